//! Connecting: a deadpool pool whose connections are verified before reuse.

use super::{Store, StoreError};
use crate::config::DatabaseSettings;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;

impl Store {
    /// Pool with `RecyclingMethod::Verified`, connect timeout and keepalives. Connects lazily:
    /// call `ping` to find out whether the database is reachable.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = settings.url.parse()?;
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        pg.connect_timeout(connect_timeout);
        if settings.keepalive_idle_secs > 0 {
            pg.keepalives(true)
                .keepalives_idle(Duration::from_secs(settings.keepalive_idle_secs));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("revenue-os");
        }
        // Verified: the default (Fast) only looks at the socket and can hand out a connection
        // the server already dropped; Verified runs a round trip first.
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout * 2))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }

    /// `SELECT 1` through the pool (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
