//! One unit of work (`unit`: decode → cycle in the store → ack → relay), kept apart from the
//! loop that drives it (`run`). Around them: a delivery's task (`deliveries`), settling it
//! (`settle`), the broker session (`session`), the outbox relay (`relay`, marking confirms
//! together through `coalesce`), periodic services
//! (`periodic`, webhook delivery among them, over `webhook_http`), the message plan (`plan`),
//! when reports give way to cycles (`turns`) and what the worker knows of itself (`health`).

pub mod coalesce;
pub mod deliveries;
pub mod deviation;
pub mod health;
pub mod ops;
pub mod periodic;
pub mod plan;
pub mod policy;
pub mod relay;
pub mod run;
pub mod session;
pub mod settle;
pub mod turns;
pub mod unit;
pub mod webhook_http;

pub use deliveries::{HookAction, Hooks};
pub use health::WorkerStatus;
pub use plan::{PlanContext, Planner};
pub use policy::{Rules, TriggerPolicy};
pub use relay::Relay;
pub use run::Worker;
pub use unit::{Context, Disposition, Incoming, Processed};

use crate::broker::BrokerError;
use crate::contract::{EnvelopeError, KernelError};
use crate::store::StoreError;

/// Why a delivery could not be turned into a cycle. The one place that says retry or not.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Refused before parsing: too large, or a content type that is not JSON.
    #[error("trigger refused: {0}")]
    Envelope(EnvelopeError),
    #[error("malformed trigger: {0}")]
    Malformed(String),
    #[error("missing message_id")]
    MissingMessageId,
    #[error("unknown tenant: {0}")]
    UnknownTenant(KernelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("panic while processing: {0}")]
    Panic(String),
}

impl Failure {
    /// Transient (database or broker unavailable): retried, then requeued so the queue's
    /// delivery limit eventually dead-letters it. Everything else is permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::Store(e) => e.is_retryable(),
            Failure::Broker(e) => e.is_retryable(),
            Failure::Envelope(_)
            | Failure::Malformed(_)
            | Failure::MissingMessageId
            | Failure::UnknownTenant(_)
            | Failure::Panic(_) => false,
        }
    }

    /// The database could not be reached: the unit holds its delivery until it can be.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Failure::Store(e) if e.is_unreachable())
    }

    /// Short label for logs and metrics, and the `x-revenue-os-reason` of a dead letter.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Envelope(EnvelopeError::TooLarge { .. }) => "too_large",
            Failure::Envelope(EnvelopeError::NotJson(_)) | Failure::Malformed(_) => "malformed",
            Failure::MissingMessageId => "no_message_id",
            Failure::UnknownTenant(_) => "unknown_tenant",
            Failure::Store(_) => "store",
            Failure::Broker(_) => "broker",
            Failure::Panic(_) => "internal_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_started_at_zero_by_the_metrics() {
        let all = [
            Failure::Envelope(EnvelopeError::TooLarge { size: 2, max: 1 }),
            Failure::Envelope(EnvelopeError::NotJson("text/plain".into())),
            Failure::Malformed("x".into()),
            Failure::MissingMessageId,
            Failure::UnknownTenant(KernelError::tenant_not_found(uuid::Uuid::nil())),
            Failure::Store(StoreError::Pool("x".into())),
            Failure::Broker(BrokerError::Nacked("m".into())),
            Failure::Panic("x".into()),
        ];
        for f in &all {
            assert!(
                crate::telemetry::metrics::TRIGGER_FAILURE_REASONS.contains(&f.reason()),
                "{}",
                f.reason()
            );
        }
    }
}
