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

/// `url` with its database name replaced (keeps user, host, port and query). A libpq
/// key=value string gets its `dbname` set.
pub fn url_with_database(url: &str, database: &str) -> String {
    if let Some(pairs) = key_values(url) {
        return render(with(pairs, "dbname", Some(database)));
    }
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
    if let Some(pairs) = key_values(url) {
        return render(with(with(pairs, "password", None), "user", Some(role)));
    }
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
    if let Some(pairs) = key_values(url) {
        return pairs
            .into_iter()
            .rev()
            .find(|(k, _)| k == "dbname")
            .map(|(_, v)| v);
    }
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let i = base[authority_start..].find('/')?;
    let name = &base[authority_start + i + 1..];
    (!name.is_empty()).then(|| name.to_owned())
}

/// A libpq key=value string's pairs in order (`host=/var/run/postgresql dbname='my db'`);
/// None for a URL or for a string libpq would not parse either.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    if s.contains("://") {
        return None;
    }
    let mut pairs = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        let after = after.trim_start();
        let quoted = after.starts_with('\'');
        let mut chars = after.chars();
        if quoted {
            chars.next();
        }
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
        }
        if !closed {
            return None;
        }
        pairs.push((key.to_owned(), value));
        rest = chars.as_str().trim_start();
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// `pairs` without `key`, then with `key = value` last (libpq and tokio-postgres take the
/// last of a repeated key; dropping the others keeps the string readable).
fn with(mut pairs: Vec<(String, String)>, key: &str, value: Option<&str>) -> Vec<(String, String)> {
    pairs.retain(|(k, _)| k != key);
    if let Some(v) = value {
        pairs.push((key.to_owned(), v.to_owned()));
    }
    pairs
}

/// Pairs as a key=value string, each value quoted so that spaces and quotes survive.
fn render(pairs: Vec<(String, String)>) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
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

    #[test]
    fn a_key_value_string_gets_its_dbname_and_user_set() {
        let kv = "host=/var/run/postgresql port = 5432 dbname=app user=u password='p w'";
        let bench = super::url_with_database(kv, "app_morning");
        assert_eq!(
            bench,
            "host='/var/run/postgresql' port='5432' user='u' password='p w' dbname='app_morning'"
        );
        assert_eq!(super::database_name(kv).as_deref(), Some("app"));
        assert_eq!(super::database_name(&bench).as_deref(), Some("app_morning"));
        assert_eq!(
            super::url_as(&bench, "w"),
            "host='/var/run/postgresql' port='5432' dbname='app_morning' user='w'"
        );
        // What it writes, the driver reads back.
        let config: tokio_postgres::Config = bench.parse().expect("a key=value string");
        assert_eq!(config.get_dbname(), Some("app_morning"));
        assert_eq!(config.get_password(), Some(&b"p w"[..]));
        // Quotes and backslashes survive the round trip.
        let odd = super::url_with_database(r"host=h dbname='it\'s'", r"a'b\c");
        assert_eq!(
            super::database_name(r"host=h dbname='it\'s'").as_deref(),
            Some("it's")
        );
        assert_eq!(super::database_name(&odd).as_deref(), Some(r"a'b\c"));
        let config: tokio_postgres::Config = odd.parse().expect("quoted");
        assert_eq!(config.get_dbname(), Some(r"a'b\c"));
        // No dbname: none is named, and one is added.
        assert_eq!(super::database_name("host=h user=u"), None);
        assert_eq!(
            super::url_with_database("host=h", "b"),
            "host='h' dbname='b'"
        );
        // An unclosed quote is not a key=value string: left to the URL rules (and to the
        // driver's error when it connects).
        assert_eq!(super::database_name("host='h dbname=x"), None);
    }
}
