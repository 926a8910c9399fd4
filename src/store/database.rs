//! Creating the configured database when it does not exist yet (first `migrate`, the demo).

use super::{Store, StoreError};
use crate::config::DatabaseSettings;

impl Store {
    /// Creates the database named in `settings.url` if it is missing, connecting to the
    /// server's `postgres` maintenance database. Returns whether it was created. Needs the
    /// CREATEDB privilege only when the database is actually missing.
    pub async fn create_database_if_missing(
        settings: &DatabaseSettings,
    ) -> Result<bool, StoreError> {
        // The same TLS and timeouts as the pool.
        let (target, tls) = super::pool::client_config(settings)?;
        let Some(name) = target.get_dbname().map(str::to_owned) else {
            return Ok(false);
        };
        let mut admin = target.clone();
        admin.dbname("postgres");
        let (client, connection) = admin.connect(tls).await?;
        let conn = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if !exists {
            // Identifiers cannot be bound as parameters; quote it instead.
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => {}
                // Another process created it between the check and now.
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
        }
        drop(client);
        let _ = conn.await;
        Ok(!exists)
    }

    /// Drops the database named in `settings.url`, if any, closing its sessions first (the
    /// benchmark's scratch database).
    pub async fn drop_database(settings: &DatabaseSettings) -> Result<(), StoreError> {
        let (target, tls) = super::pool::client_config(settings)?;
        let Some(name) = target.get_dbname().map(str::to_owned) else {
            return Ok(());
        };
        let mut admin = target.clone();
        admin.dbname("postgres");
        let (client, connection) = admin.connect(tls).await?;
        let conn = tokio::spawn(connection);
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            .await?;
        drop(client);
        let _ = conn.await;
        Ok(())
    }
}

/// Where `settings.url` points, as `host:port` (several, comma-separated), for messages.
pub fn target_address(settings: &DatabaseSettings) -> String {
    let Ok((config, _)) = super::pool::client_config(settings) else {
        return "the configured database.url".to_owned();
    };
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `url` with its database name replaced (keeps user, host, port and query).
pub fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    format!("{root}/{database}{query}")
}

/// `url` with its user replaced by `role` (no password: for trust or a `.pgpass`).
pub fn url_as(url: &str, role: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{role}@{host}")
        }
        None => format!("{url} user={role}"),
    }
}

/// The database a URL names, if it names one (read as `url_with_database` writes it: libpq
/// options such as `sslmode=verify-full` need not parse).
pub fn database_name(url: &str) -> Option<String> {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let i = base[authority_start..].find('/')?;
    let name = &base[authority_start + i + 1..];
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_only_the_database_name() {
        let f = super::url_with_database;
        assert_eq!(f("postgres://u@h:5432/app", "b"), "postgres://u@h:5432/b");
        assert_eq!(
            f("postgres://u@h/app?sslmode=off", "b"),
            "postgres://u@h/b?sslmode=off"
        );
        assert_eq!(f("postgres://u@h", "b"), "postgres://u@h/b");
        let name = super::database_name;
        assert_eq!(
            name("postgres://u@h:5432/app?sslmode=off").as_deref(),
            Some("app")
        );
        assert_eq!(name("postgres://u@h").as_deref(), None);
        // A Unix socket's directory, percent-encoded as the host, is not a path of the URL.
        let socket = "postgres://u@%2Fvar%2Frun%2Fpostgresql/app";
        assert_eq!(f(socket, "b"), "postgres://u@%2Fvar%2Frun%2Fpostgresql/b");
        assert_eq!(name(socket).as_deref(), Some("app"));
        assert_eq!(
            super::url_as(socket, "w"),
            "postgres://w@%2Fvar%2Frun%2Fpostgresql/app"
        );
    }
}
