//! docs/executors.md stays true. Every example report in the executor teams' guide is valid
//! against `revenue-os schema report`, parses with the worker's own decoder, and is about an
//! action the example tenant's cycle really has. The example action message is the body the
//! planner publishes for that cycle, and every dead-letter reason the worker or the broker can
//! give is explained. A guide that drifts from the code fails here, not at an executor's desk.

use revenue_os::broker::Topology;
use revenue_os::contract::report::revert_message_id;
use revenue_os::contract::schema::{Document, schema};
use revenue_os::contract::{
    ActionMessage, Catalog, KernelOutput, ReportError, ReportKind, ReportPayload, Subject, Trigger,
    TriggerType, decode_report, parse_timestamp,
};
use revenue_os::store::CycleStatus;
use revenue_os::worker::{PlanContext, Planner};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use uuid::Uuid;

const GUIDE: &str = "docs/executors.md";
const REPORT_MARKER: &str = "<!-- example-report -->";
const ACTION_MARKER: &str = "<!-- example-action-message -->";
/// The example tenant's fixture and the clock the guide's cycle was decided with.
const FIXTURE: &str = "tests/fixtures/valid/demand_bound.json";
const NOW: &str = "2026-11-26T06:05:00Z";
/// The cycle id every example in the guide uses.
const CYCLE: &str = "b3ab5f7e-66af-4812-b217-44172076dbd1";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    std::fs::read_to_string(root().join(GUIDE)).unwrap_or_else(|e| panic!("{GUIDE}: {e}"))
}

/// The body of every ```json block that follows a `marker` line, with the line number of its
/// first line. A marker not followed by a ```json fence is a mistake in the guide.
fn marked_blocks(text: &str, marker: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == marker {
            let fence = lines.get(i + 1).copied().unwrap_or_default();
            assert_eq!(
                fence.trim_end(),
                "```json",
                "{GUIDE}:{}: {marker} must be followed by a ```json fence",
                i + 2
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].trim_end() == "```")
                .unwrap_or_else(|| panic!("{GUIDE}:{}: the ```json block is not closed", i + 2));
            out.push((start + 1, lines[start..end].join("\n")));
            i = end;
        }
        i += 1;
    }
    out
}

/// The cycle the guide's examples come from: the kernel on the example tenant, at the
/// guide's clock, with the guide's cycle id.
fn example_cycle() -> KernelOutput {
    let bytes = std::fs::read(root().join(FIXTURE)).unwrap();
    let now = parse_timestamp(NOW).unwrap();
    let cycle = Uuid::parse_str(CYCLE).unwrap();
    revenue_os::kernel::run(
        &bytes,
        &revenue_os::contract::Levers::default(),
        &Catalog::embedded().unwrap(),
        now,
        cycle,
    )
    .unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn every_example_report_in_the_guide_is_valid() {
    let validator = jsonschema::draft7::new(&schema(Document::Report)).unwrap();
    let out = example_cycle();
    let cycle = Uuid::parse_str(CYCLE).unwrap();
    let blocks = marked_blocks(&guide(), REPORT_MARKER);
    assert!(
        blocks.len() >= 5,
        "{GUIDE}: {} example reports; one per type is the least",
        blocks.len()
    );
    let mut kinds = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (line, text) in &blocks {
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{GUIDE}:{line}: the example is not JSON: {e}"));
        let errors = schema_errors(&validator, &value);
        assert!(
            errors.is_empty(),
            "{GUIDE}:{line}: not valid against `revenue-os schema report`: {errors:?}"
        );
        let report = decode_report(text.as_bytes()).unwrap_or_else(|e| {
            panic!(
                "{GUIDE}:{line}: the worker would dead-letter it as {}: {e}",
                e.reason()
            )
        });

        // About an action of the example cycle, for its tenant.
        assert_eq!(report.subject.cycle_id(), cycle, "{GUIDE}:{line}: subject");
        let action = out
            .actions
            .iter()
            .find(|a| a.action_id == report.subject.action_id())
            .unwrap_or_else(|| {
                panic!(
                    "{GUIDE}:{line}: {} is not an action of the example cycle",
                    report.subject.action_id()
                )
            });
        assert_eq!(
            report.tenant_id.to_string(),
            out.tenant_id,
            "{GUIDE}:{line}"
        );

        // The guide's own advice: deterministic ids, unique per source.
        let subject = value["subject"].as_str().unwrap();
        assert_eq!(
            report.id,
            format!("{subject}:{}", report.kind().as_str()),
            "{GUIDE}:{line}: ids are <subject>:<type> in the guide"
        );
        assert!(
            ids.insert((report.source.clone(), report.id.clone())),
            "{GUIDE}:{line}: a repeated (source, id) is a duplicate and would change nothing"
        );

        // The values agree with the action they report on.
        let change = &action.proposed_change;
        match (&report.payload, &report.subject) {
            (ReportPayload::Applied(a), Subject::Action { .. }) => {
                assert_eq!(a.after, change.new_value, "{GUIDE}:{line}: applied.after")
            }
            // A revert restores what was there before the change.
            (ReportPayload::Applied(a), Subject::Revert { .. }) => {
                assert_eq!(a.before, change.new_value, "{GUIDE}:{line}: revert before");
                assert_eq!(
                    a.after, change.current_value,
                    "{GUIDE}:{line}: revert after"
                );
            }
            (ReportPayload::Outcome(o), _) => {
                assert_eq!(o.target_metric, action.target_metric, "{GUIDE}:{line}");
                assert!(
                    (o.delta - (o.observed_value - o.baseline_value)).abs() < 1e-9,
                    "{GUIDE}:{line}: delta is observed_value - baseline_value"
                );
            }
            _ => {}
        }
        kinds.insert(report.kind().as_str());
    }
    for kind in ReportKind::ALL {
        assert!(
            kinds.contains(kind.as_str()),
            "{GUIDE}: no example of a `{}` report",
            kind.as_str()
        );
    }
}

#[test]
fn the_guide_s_action_message_is_what_the_worker_publishes() {
    let text = guide();
    let blocks = marked_blocks(&text, ACTION_MARKER);
    assert_eq!(blocks.len(), 1, "{GUIDE}: one example action message");
    let (line, body) = &blocks[0];
    let value: Value = serde_json::from_str(body).unwrap();
    let validator = jsonschema::draft7::new(&schema(Document::ActionMessage)).unwrap();
    let errors = schema_errors(&validator, &value);
    assert!(
        errors.is_empty(),
        "{GUIDE}:{line}: not valid against `revenue-os schema action-message`: {errors:?}"
    );
    let shown: ActionMessage = serde_json::from_value(value).unwrap();

    let out = example_cycle();
    let topology = Topology::new("revenue_os", &Catalog::embedded().unwrap(), 10);
    let ctx = PlanContext {
        tenant_id: Uuid::parse_str(&out.tenant_id).unwrap(),
        message_id: "guide".into(),
        trigger: Trigger {
            kind: TriggerType::Scheduled,
            source: "cron_daily".into(),
            triggered_at: "2026-11-26T06:00:00Z".into(),
        },
    };
    let cycle = Uuid::parse_str(CYCLE).unwrap();
    let messages =
        Planner::new(topology).messages(&ctx, cycle, &Ok(out), CycleStatus::Completed, &[]);
    let published = messages
        .iter()
        .find(|m| m.action_id.as_deref() == Some(shown.action.action_id.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "{GUIDE}:{line}: {} is not an action of the example cycle",
                shown.action.action_id
            )
        });
    let sent: ActionMessage = serde_json::from_slice(&published.body).unwrap();
    assert_eq!(
        shown, sent,
        "{GUIDE}:{line}: the body differs from what is published"
    );

    // The properties the guide names for it are the ones it is published with.
    for name in [
        &published.exchange,
        &published.routing_key,
        &published.message_id,
    ] {
        assert!(text.contains(name.as_str()), "{GUIDE} never names `{name}`");
    }
    let headers: BTreeSet<&str> = published
        .headers
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        headers,
        BTreeSet::from(["action_id", "cycle_id", "tenant_id", "version"]),
        "the guide's list of action headers"
    );
    assert_eq!(
        revert_message_id(cycle, &shown.action.action_id),
        format!("{CYCLE}:revert:{}", shown.action.action_id),
        "the guide's revert message_id"
    );
}

#[test]
fn the_guide_names_every_dead_letter_reason() {
    let text = guide();
    let decoded = [
        ReportError::NotCloudEvent(String::new()),
        ReportError::UnknownType(String::new()),
        ReportError::Invalid(String::new()),
    ]
    .map(|e| e.reason());
    // Decided with the store (`results::unit`), and by the broker's delivery limit.
    let recorded = [
        "too_large",
        "unknown_action",
        "tenant_mismatch",
        "store",
        "delivery_limit",
    ];
    for reason in decoded.into_iter().chain(recorded) {
        assert!(
            text.contains(&format!("| `{reason}` |")),
            "{GUIDE} has no row explaining the dead-letter reason `{reason}`"
        );
    }
    for expected in [
        "not_cloudevent",
        "unknown_type",
        "invalid_report",
        "unknown_action",
        "tenant_mismatch",
        "delivery_limit",
    ] {
        assert!(text.contains(expected), "{GUIDE} never mentions {expected}");
    }
    for header in ["x-revenue-os-reason", "x-revenue-os-detail"] {
        assert!(
            text.contains(header),
            "{GUIDE} never names the {header} header"
        );
    }
}
