//! `/dead-letters`: the triggers the worker refused, and (on `?peek`) what waits in the dead
//! queue, read through the broker module's `DeadQueueReader`.

use super::super::operator::{Nav, Visitor};
use super::super::state::App;
use super::overview::{RejectedRow, rejected_rows};
use super::{Page, ok};
use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use std::time::Duration;

/// Messages a peek takes (and puts back).
const PEEK_LIMIT: usize = 20;
/// How long a peek may wait for the broker.
const PEEK_WITHIN: Duration = Duration::from_secs(5);

struct LetterRow {
    message_id: String,
    tenant_id: String,
    reason: String,
    routing_key: String,
    body: String,
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    nav: Nav,
    rejected: Vec<RejectedRow>,
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
    ok(&DeadLettersPage {
        nav: who.nav,
        rejected: rejected_rows(&shared, 200).await?,
        queue: reader.map(|r| r.queue().to_owned()),
        peeked,
        peek_limit: PEEK_LIMIT,
        letters,
        peek_error,
    })
}
