//! `/dead-letters`: the triggers the worker refused, the webhook deliveries that ran out of
//! attempts (`Store::webhook_deliveries`), and (on `?peek`) what waits in the dead queue, read
//! through the broker module's `DeadQueueReader`.

use super::super::operator::{Nav, Visitor};
use super::super::state::App;
use super::overview::{RejectedRow, rejected_rows};
use super::{Page, ok, time};
use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use std::time::Duration;

/// Messages a peek takes (and puts back).
const PEEK_LIMIT: usize = 20;
/// How long a peek may wait for the broker.
const PEEK_WITHIN: Duration = Duration::from_secs(5);
/// Dead webhook deliveries listed, newest first.
const DEAD_DELIVERIES: i64 = 200;

struct LetterRow {
    message_id: String,
    tenant_id: String,
    reason: String,
    routing_key: String,
    body: String,
}

/// A webhook delivery given up on: kept with its last status and error.
struct DeadDeliveryRow {
    when: String,
    id: i64,
    event: String,
    subject: String,
    tenant_id: String,
    webhook: String,
    /// Scheme, host and port only: a webhook's path can be its secret (Slack's are).
    origin: String,
    attempts: i32,
    last_status: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    nav: Nav,
    rejected: Vec<RejectedRow>,
    dead_deliveries: Vec<DeadDeliveryRow>,
    dead_delivery_limit: i64,
    queue: Option<String>,
    peeked: bool,
    peek_limit: usize,
    letters: Vec<LetterRow>,
    peek_error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PeekQuery {
    peek: Option<String>,
}

pub async fn get(State(shared): App, who: Visitor, Query(q): Query<PeekQuery>) -> Page {
    let reader = shared.console.dead_queue.as_ref();
    let peeked = q.peek.is_some() && reader.is_some();
    let (letters, peek_error) = match reader.filter(|_| peeked) {
        None => (Vec::new(), None),
        Some(r) => match r.peek(PEEK_LIMIT, PEEK_WITHIN).await {
            Ok(listed) => (
                listed
                    .into_iter()
                    .map(|d| LetterRow {
                        message_id: d.message_id.unwrap_or_else(|| "(none)".into()),
                        tenant_id: d.tenant_id.unwrap_or_else(|| "-".into()),
                        reason: d.reason.unwrap_or_else(|| "-".into()),
                        routing_key: d.routing_key,
                        body: d.body.chars().take(300).collect(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(format!("Could not read the queue: {e}"))),
        },
    };
    let dead_deliveries = shared
        .console
        .store
        .webhook_deliveries(true, DEAD_DELIVERIES)
        .await?
        .into_iter()
        .map(|d| {
            let origin = origin(&d.url);
            DeadDeliveryRow {
                when: time(d.dead_at.unwrap_or(d.next_attempt_at)),
                id: d.id,
                event: d.event,
                subject: d.subject,
                tenant_id: d.tenant_id.map_or_else(|| "-".into(), |t| t.to_string()),
                webhook: d.webhook,
                attempts: d.attempts,
                last_status: d.last_status.map_or_else(|| "-".into(), |s| s.to_string()),
                last_error: d.last_error.map_or_else(
                    || "-".into(),
                    |e| {
                        e.replace(&d.url, &format!("{origin}/…"))
                            .chars()
                            .take(300)
                            .collect()
                    },
                ),
                origin,
            }
        })
        .collect();
    ok(&DeadLettersPage {
        nav: who.nav,
        rejected: rejected_rows(&shared, 200).await?,
        dead_deliveries,
        dead_delivery_limit: DEAD_DELIVERIES,
        queue: reader.map(|r| r.queue().to_owned()),
        peeked,
        peek_limit: PEEK_LIMIT,
        letters,
        peek_error,
    })
}

/// `scheme://host[:port]` of a URL: what the page shows of a webhook's address.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials in the authority are a secret too.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if scheme.is_empty() {
        host.to_owned()
    } else {
        format!("{scheme}://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn the_origin_leaves_out_the_path_query_and_credentials() {
        assert_eq!(
            origin("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            origin("http://u:p@127.0.0.1:8080/in?k=1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin("https://example.com?token=x"), "https://example.com");
    }
}
