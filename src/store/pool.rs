//! Connecting: a deadpool pool whose connections are verified before reuse, over TLS as the
//! DSN's `sslmode` says (`tls.rs`).

use super::tls;
use super::{Store, StoreError};
use crate::config::DatabaseSettings;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The driver's settings and TLS connector for `settings`: the DSN without libpq's TLS
/// options (tokio-postgres rejects verify-*), the sslmode mapped, timeouts and keepalives added.
pub(crate) fn client_config(
    settings: &DatabaseSettings,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    let (pg, tls) = driver_config(settings)?;
    Ok((pg, tls::connector(&tls)?))
}

/// `client_config` without the connector (no file is read): the pure part.
fn driver_config(
    settings: &DatabaseSettings,
) -> Result<(tokio_postgres::Config, tls::TlsOptions), StoreError> {
    let tls = tls::take_tls_options(&settings.url)?;
    let mut pg: tokio_postgres::Config = tls.dsn.parse().map_err(|e: tokio_postgres::Error| {
        // The driver's top line is only "invalid connection string"; its cause says which.
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
        StoreError::Config(format!("database url: {e}{}", cause.unwrap_or_default()))
    })?;
    pg.ssl_mode(tls.mode.driver_mode());
    pg.connect_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)));
    if settings.keepalive_idle_secs > 0 {
        pg.keepalives(true)
            .keepalives_idle(Duration::from_secs(settings.keepalive_idle_secs));
    }
    if pg.get_application_name().is_none() {
        pg.application_name("revenue-os");
    }
    Ok((pg, tls))
}

impl Store {
    /// Pool with `RecyclingMethod::Verified`, connect timeout, keepalives and TLS per
    /// `sslmode`. Connects lazily: call `ping` to find out whether
    /// the database is reachable; a bad URL or an unreadable `sslrootcert` fails here.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let (pg, tls) = client_config(settings)?;
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        // Verified: the default (Fast) only looks at the socket and can hand out a connection
        // the server already dropped; Verified runs a round trip first.
        let manager = Manager::from_config(
            pg,
            tls,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::store::tls::SslMode;
    use tokio_postgres::config::SslMode as Driver;

    fn settings(url: &str) -> DatabaseSettings {
        let mut s = Settings::load_from(&[]).unwrap().database;
        s.url = url.into();
        s
    }

    #[test]
    fn the_mapped_sslmode_and_the_application_name_are_applied() {
        let (pg, tls) = driver_config(&settings("postgres://u@h/d?sslmode=verify-full")).unwrap();
        assert_eq!((pg.get_ssl_mode(), tls.mode), (Driver::Require, SslMode::VerifyFull));
        assert_eq!(pg.get_application_name(), Some("revenue-os"));
        let (pg, _) = driver_config(&settings("host=h user=u application_name=job")).unwrap();
        assert_eq!(pg.get_ssl_mode(), Driver::Prefer, "libpq's default");
        assert_eq!(pg.get_application_name(), Some("job"));
    }

    #[test]
    fn an_unknown_url_option_is_a_config_error() {
        let e = driver_config(&settings("postgres://u@h/d?sslcert=/c.pem")).unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e}");
        assert!(e.to_string().contains("sslcert"), "{e}");
    }
}
