//! Connecting: a deadpool pool whose connections are verified before reuse, over TLS as the
//! DSN's `sslmode` says (`tls.rs`), with every wait on the server bounded.

use super::tls;
use super::{Store, StoreError};
use crate::config::DatabaseSettings;
use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The driver's settings and TLS connector for `settings`: the DSN without libpq's TLS
/// options (tokio-postgres rejects verify-*), the sslmode mapped, timeouts, keepalives and the
/// session limits added.
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
    // tokio-postgres turns keepalives on by default: 0 has to say off.
    pg.keepalives(settings.keepalive_idle_secs > 0);
    if settings.keepalive_idle_secs > 0 {
        pg.keepalives_idle(Duration::from_secs(settings.keepalive_idle_secs));
        if settings.keepalive_interval_secs > 0 {
            pg.keepalives_interval(Duration::from_secs(settings.keepalive_interval_secs));
        }
        if settings.keepalive_retries > 0 {
            pg.keepalives_retries(settings.keepalive_retries);
        }
    }
    if settings.tcp_user_timeout_secs > 0 {
        pg.tcp_user_timeout(Duration::from_secs(settings.tcp_user_timeout_secs));
    }
    if let Some(options) = session_options(settings, pg.get_options()) {
        pg.options(options);
    }
    if pg.get_application_name().is_none() {
        pg.application_name("revenue-os");
    }
    Ok((pg, tls))
}

/// The startup `options`: our `-c` settings first, then the URL's own, so that a
/// `-c statement_timeout=…` in the URL wins (the server applies them in order).
fn session_options(settings: &DatabaseSettings, from_url: Option<&str>) -> Option<String> {
    let mut parts = vec![];
    if settings.statement_timeout_ms > 0 {
        parts.push(format!(
            "-c statement_timeout={}",
            settings.statement_timeout_ms
        ));
    }
    if settings.idle_in_transaction_timeout_ms > 0 {
        parts.push(format!(
            "-c idle_in_transaction_session_timeout={}",
            settings.idle_in_transaction_timeout_ms
        ));
    }
    parts.extend(
        from_url
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned),
    );
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Fails with SQLSTATE 25006 (read_only_sql_transaction, which the store counts as
/// unreachable) on a standby or a read-only server: the first half of `ping`.
const WRITABLE_CHECK: &str = "DO $$BEGIN IF pg_is_in_recovery() OR \
     current_setting('transaction_read_only')::bool THEN RAISE EXCEPTION \
     'this server is read-only (a standby, or a demoted primary)' USING ERRCODE = '25006'; \
     END IF; END$$";

/// The pool's check before reusing a connection: fails (division by zero; a failed check
/// discards the connection, whatever the code) where `WRITABLE_CHECK` would. A plain query,
/// since plpgsql compiles a DO block on every run and this runs on every checkout: 0.04 ms
/// against 0.06 on an idle server, more under load. `pg_is_in_recovery()` is volatile, so the
/// planner cannot fold the division and fail on a writable server.
const REUSE_CHECK: &str = "SELECT 1 / (NOT (pg_is_in_recovery() OR \
     current_setting('transaction_read_only')::bool))::int";

/// The server a connection reached, as `host:port`.
const SERVER_QUERY: &str = "SELECT coalesce(host(inet_server_addr()), 'local socket') || ':' \
     || coalesce(inet_server_port()::text, current_setting('port'))";

fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    })
}

impl Store {
    /// Pool with connections checked writable before reuse, connect timeout, keepalives, TCP user timeout,
    /// session timeouts and TLS per `sslmode`. Connects lazily: call `ping` to find out whether
    /// the database is reachable; a bad URL or an unreadable `sslrootcert` fails here.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let (pg, tls) = client_config(settings)?;
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs.max(1));
        // Fast only looks at the socket and can hand out a connection the server already
        // dropped; this runs a round trip first, and fails (so the pool discards the
        // connection) on a server that is now read-only: after a failover, connections to the
        // old primary are not reused, and new ones find the new primary by the DSN's
        // target_session_attrs.
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Custom(REUSE_CHECK.into()),
            },
        );
        let primary: Arc<Mutex<Option<String>>> = Default::default();
        let seen = primary.clone();
        // Each new connection (with target_session_attrs=read-write: to the primary) says
        // which server it reached, so `/readyz` names the new primary right after a failover.
        let record = Hook::async_fn(move |client: &mut deadpool_postgres::ClientWrapper, _| {
            let seen = seen.clone();
            Box::pin(async move {
                if let Ok(rows) = client.simple_query(SERVER_QUERY).await {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = first_value(&rows);
                }
                Ok(())
            })
        });
        let pool = Pool::builder(manager)
            .post_create(record)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout * 2))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Store { pool, primary })
    }

    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
    }

    /// A round trip through the pool (readiness): the server must be writable (a standby
    /// answers 25006, unreachable). Remembers which server answered.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .simple_query(&format!("{WRITABLE_CHECK}; {SERVER_QUERY}"))
            .await?;
        *self.primary.lock().unwrap_or_else(|p| p.into_inner()) = first_value(&rows);
        Ok(())
    }

    /// The server (`host:port`) the last successful `ping` reached: the primary, since the
    /// pool only keeps connections to a writable server.
    pub fn primary(&self) -> Option<String> {
        self.primary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    fn session_limits_go_first_and_the_urls_options_after() {
        let (pg, _) = driver_config(&settings(
            "postgres://u@h/d?options=-c%20search_path%3Dapp%20-c%20statement_timeout%3D5s&sslmode=verify-full",
        ))
        .unwrap();
        assert_eq!(
            pg.get_options(),
            Some(
                "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000 \
                 -c search_path=app -c statement_timeout=5s"
            )
        );
        assert_eq!(pg.get_ssl_mode(), Driver::Require);
        let (pg, _) = driver_config(&settings("host=h user=u options='-c work_mem=4MB'")).unwrap();
        assert_eq!(
            pg.get_options(),
            Some(
                "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000 \
                 -c work_mem=4MB"
            )
        );
        assert_eq!(pg.get_ssl_mode(), Driver::Prefer, "libpq's default");
    }

    #[test]
    fn zero_leaves_the_servers_setting() {
        let mut s = settings("postgres://u@h/d");
        s.statement_timeout_ms = 0;
        s.idle_in_transaction_timeout_ms = 0;
        assert_eq!(driver_config(&s).unwrap().0.get_options(), None);
        s.idle_in_transaction_timeout_ms = 1500;
        assert_eq!(
            driver_config(&s).unwrap().0.get_options(),
            Some("-c idle_in_transaction_session_timeout=1500")
        );
    }

    #[test]
    fn tcp_settings_and_the_application_name_are_applied() {
        let (pg, tls) = driver_config(&settings("postgres://u@h/d?sslmode=disable")).unwrap();
        assert_eq!(pg.get_tcp_user_timeout(), Some(&Duration::from_secs(20)));
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(pg.get_keepalives_retries(), Some(3));
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(pg.get_application_name(), Some("revenue-os"));
        assert_eq!(
            (pg.get_ssl_mode(), tls.mode),
            (Driver::Disable, SslMode::Disable)
        );
        let mut s = settings("postgres://u@h/d?application_name=job");
        s.keepalive_idle_secs = 0;
        s.tcp_user_timeout_secs = 0;
        let (pg, _) = driver_config(&s).unwrap();
        assert!(!pg.get_keepalives());
        assert_eq!(pg.get_tcp_user_timeout(), None);
        assert_eq!(pg.get_application_name(), Some("job"));
    }

    /// On the database's own host its Unix socket skips TCP and TLS (README, Capacity): both
    /// forms name the socket's directory as the host.
    #[test]
    fn a_socket_directory_is_a_host() {
        for url in [
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/d",
            "host=/var/run/postgresql user=u dbname=d",
        ] {
            let (pg, _) = driver_config(&settings(url)).unwrap();
            assert_eq!(
                pg.get_hosts(),
                [tokio_postgres::config::Host::Unix(
                    "/var/run/postgresql".into()
                )],
                "{url}"
            );
        }
    }

    #[test]
    fn an_unknown_url_option_is_a_config_error() {
        let e = driver_config(&settings("postgres://u@h/d?sslcert=/c.pem")).unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e}");
        assert!(e.to_string().contains("sslcert"), "{e}");
    }
}
