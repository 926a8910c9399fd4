//! What to do with a delivery once its unit of work is over: one type for triggers and
//! executor reports, applied by `worker::settle`.

/// How a delivery is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (committed, replayed or a duplicate): ack.
    Ack,
    /// Permanent: copy it to the dead-letter exchange with this reason
    /// (`x-revenue-os-reason`) and detail, then ack.
    DeadLetter {
        reason: &'static str,
        detail: String,
    },
    /// Transient and out of retries: reject with requeue; the delivery limit ends the loop.
    Requeue(String),
    /// The database is unreachable: keep the delivery unsettled and run it again once the
    /// database answers, so an outage does not count against the delivery limit.
    Unavailable(String),
}

impl AsRef<Disposition> for Disposition {
    fn as_ref(&self) -> &Disposition {
        self
    }
}
