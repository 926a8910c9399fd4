//! The clock the service runs by: the system's, or one a simulation or a test sets. Only the
//! edges read it (a cycle's `now`, report and evaluation times); the kernel takes `now` as an
//! argument.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stays where it is set (milliseconds precision).
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self(Some(Arc::new(AtomicI64::new(at.timestamp_millis()))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(ms) => {
                DateTime::from_timestamp_millis(ms.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
        }
    }

    /// Moves a manual clock; a system clock ignores it.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(ms) = &self.0 {
            ms.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }
}
