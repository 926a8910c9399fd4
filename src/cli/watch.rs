//! `watch`: one watchdog sweep now; `--explain` prints each evaluation's numbers.

use super::{Output, json, load, runtime};
use crate::error::Error;
use crate::store::{Store, WatchVerdict, Watched};
use crate::watchdog::explain;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
    /// Print each evaluation's numbers to stderr (and, with --tenant, the stored ones).
    #[arg(long)]
    explain: bool,
}

/// One line of the sweep's summary.
#[derive(serde::Serialize)]
struct Summary<'a> {
    tenant_id: uuid::Uuid,
    cycle_id: uuid::Uuid,
    action_id: &'a str,
    as_of: chrono::NaiveDate,
    verdict: WatchVerdict,
    outcome: Option<crate::contract::Outcome>,
    sentence: &'a str,
}

pub fn run(args: Args) -> Result<Output, Error> {
    let (settings, catalog) = load()?;
    runtime(async move {
        let store = crate::app::store(&settings, false).await?;
        let done = crate::app::watch(&store, &settings, &catalog, args.tenant).await?;
        if args.explain {
            eprint!("{}", explain_sweep(&store, &done, args.tenant).await?);
        }
        let summary: Vec<Summary> = done
            .iter()
            .map(|w| Summary {
                tenant_id: w.tenant_id,
                cycle_id: w.cycle_id,
                action_id: &w.action_id,
                as_of: w.as_of,
                verdict: w.decision.evaluation.verdict,
                outcome: w.decision.evaluation.outcome,
                sentence: &w.decision.evaluation.sentence,
            })
            .collect();
        json(&summary)
    })
}

/// The `--explain` text of a sweep: each evaluation's sentence and its day-by-day numbers;
/// with a tenant, also the ones stored before.
async fn explain_sweep(
    store: &Store,
    done: &[Watched],
    tenant: Option<uuid::Uuid>,
) -> Result<String, Error> {
    let mut out = String::new();
    for w in done {
        let e = &w.decision.evaluation;
        let head = format!(
            "{} {} as of {}: {}",
            w.cycle_id,
            w.action_id,
            w.as_of,
            e.verdict.as_str()
        );
        out += &explain(&head, &e.sentence, &e.numbers);
    }
    if let Some(t) = tenant {
        // The decisions (not the days that only kept watching), newest first.
        let stored: Vec<_> = store
            .evaluations(t, 1000)
            .await?
            .into_iter()
            .filter(|e| e.verdict != WatchVerdict::Watching.as_str())
            .collect();
        if !stored.is_empty() {
            out += &format!("stored decisions of tenant {t}, newest first:\n");
        }
        for e in &stored {
            let head = format!(
                "{} {} as of {}: {} ({})",
                e.cycle_id, e.action_id, e.as_of, e.verdict, e.mode
            );
            out += &explain(&head, &e.sentence, &e.numbers);
        }
    }
    Ok(out)
}
