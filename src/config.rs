//! Layered configuration: embedded `config/default.toml`, then the file named by
//! `REVENUE_OS_CONFIG`, then `REVENUE_OS__SECTION__KEY` variables, then `DATABASE_URL` /
//! `AMQP_URL`. Passwords may only come from the environment.

use serde::{Deserialize, Serialize};
use std::time::Duration;

const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub kernel: KernelSettings,
    pub worker: WorkerSettings,
    pub watchdog: WatchdogSettings,
    #[serde(default)]
    pub deviation: DeviationSettings,
    pub approval: ApprovalSettings,
    pub http: HttpSettings,
    pub console: ConsoleSettings,
    #[serde(default)]
    pub notify: NotifySettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    pub log: LogSettings,
}

/// What the worker's `retention` service deletes, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Published outbox rows older than this many days are deleted; 0 keeps them all.
    pub outbox_days: u32,
    /// Cycles (with their actions and everything recorded about them), loads,
    /// notifications, deviations, rejected triggers and sign-ins older than this many days
    /// are deleted; 0 keeps them all. A cycle with a live action is kept however old.
    pub history_days: u32,
    /// A month of metric_snapshots and revenue_events is dropped once all its days are older
    /// than this many days; 0 keeps them all.
    pub data_days: u32,
    /// Seconds between passes.
    pub sweep_secs: u64,
    /// Rows per delete: each batch is its own short transaction (cycles a tenth of it: each
    /// takes its actions, reports, evaluations and outbox rows along).
    pub batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            outbox_days: 7,
            history_days: 400,
            data_days: 400,
            sweep_secs: 600,
            batch: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// A URL or key=value DSN; `sslmode` (libpq's five) and `sslrootcert` are honoured.
    pub url: String,
    pub pool_size: usize,
    pub connect_timeout_secs: u64,
    /// TCP keepalives: idle time before the first probe (0 turns keepalives off), the time
    /// between probes and how many unanswered probes drop the connection.
    pub keepalive_idle_secs: u64,
    pub keepalive_interval_secs: u64,
    pub keepalive_retries: u32,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before the connection is
    /// dropped (0 = the kernel's default, which can be many minutes).
    pub tcp_user_timeout_secs: u64,
    /// Session `statement_timeout` and `idle_in_transaction_session_timeout`, set at connect
    /// (0 = leave the server's setting). A `-c` for either in the URL's `options` wins.
    pub statement_timeout_ms: u64,
    pub idle_in_transaction_timeout_ms: u64,
    pub migrate_on_start: bool,
    /// The client-side deadline on each store call of the worker: what bounds a wait on a
    /// silent link, where server-side timeouts cannot fire.
    pub call_timeout_secs: u64,
}

impl DatabaseSettings {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs.max(1))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// One node's URL, or several separated by commas (a cluster's nodes).
    pub url: String,
    /// More node URLs, after those in `url` (comma-separated in `REVENUE_OS__AMQP__URLS`).
    pub urls: Vec<String>,
    /// `x-quorum-initial-group-size` of the queues this service declares: the replicas a new
    /// quorum queue gets (RabbitMQ caps it at the cluster's size). Existing queues keep theirs.
    pub quorum_initial_group_size: u32,
    /// Every exchange and queue name starts with this.
    pub prefix: String,
    /// Deliveries processed at once; also the consumer prefetch.
    pub concurrency: u16,
    /// Executor reports processed at once (the results consumer's prefetch).
    pub results_prefetch: u16,
    /// Redeliveries before the triggers queue dead-letters a message.
    pub delivery_limit: u32,
    pub heartbeat_secs: u16,
    /// The deadline on opening a session: TCP, TLS, the AMQP handshake and the declares. A
    /// broker that accepts TCP but never speaks costs this long per attempt, then a retry.
    pub connect_timeout_secs: u64,
    /// The largest trigger or report body accepted, checked before parsing; bigger ones are
    /// dead-lettered as `too_large`.
    pub max_message_bytes: usize,
    /// Queue names a `reply_to` may name besides server-generated ones (`amq.gen-*`, the
    /// direct reply-to pseudo-queue `amq.rabbitmq.reply-to*`).
    pub reply_to_allow: Vec<String>,
    /// PEM file of CA certificates trusted for `amqps://`, besides the system roots; empty:
    /// the system roots only.
    pub tls_ca_file: String,
    /// A nack this many seconds after its channel's first makes the worker publish on a new
    /// channel (a RabbitMQ 3.10 channel can stay stuck on a quorum queue's dead leader).
    pub renew_channel_after_nacks_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSettings {
    pub min_cycle_interval_hours: u32,
    pub stale_after_days: u32,
    /// The longest analysis window a trigger may ask for, in days (`INVALID_INPUT` beyond).
    pub max_window_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Hours a held action waits for a person before it expires.
    pub ttl_hours: u32,
    /// How often the worker expires and supersedes held actions (its own clock, apart from
    /// the watchdog's).
    pub sweep_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSettings {
    /// Seconds between the worker's watchdog sweeps; 0 turns the in-worker sweep off.
    pub interval_secs: u64,
}

/// Deviation detection after each load (docs/deviations.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviationSettings {
    /// Off: nothing is detected, recorded or triggered (tenants may also opt out one by one).
    pub enabled: bool,
    /// Band half-width in robust standard deviations of the one-step forecast error.
    pub k: f64,
}

impl Default for DeviationSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            k: 3.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub shutdown_grace_secs: u64,
    pub outbox_sweep_secs: u64,
    pub retry_max_attempts: usize,
    /// The most triggers whose cycles share one transaction: deliveries already waiting when
    /// one is taken go with it (none is waited for). 1 runs every cycle alone.
    pub cycle_batch: usize,
    /// The most executor reports recorded in one transaction, taken the same way: those
    /// already waiting when one is taken. 1 records every report alone.
    pub report_batch: usize,
    /// Report batches recorded at once. While they run, the next reports wait in the results
    /// consumer's prefetch, so under load batches grow instead of multiplying.
    pub report_tasks: usize,
    /// While cycles run, a report batch is taken at most this often (`worker::turns`), so a
    /// burst of triggers is not slowed by bookkeeping; 0: reports never wait.
    pub report_turn_ms: u64,
    /// `/healthz` fails when the consume loop, the relay, or running triggers have made no
    /// progress for this long (waiting out a database outage does not count).
    pub wedged_after_secs: u64,
    /// Free heap pages go back to the kernel this often (`memory::trim`); 0 never.
    pub heap_trim_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
}

/// The operator console (`src/console/`). Its write token comes only from the environment
/// (`REVENUE_OS_CONSOLE_TOKEN`), never from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Address of the console; empty turns it off in `worker`.
    pub listen: String,
}

/// Webhook notifications (docs/notifications.md): the global webhooks, where their links
/// point, and how deliveries are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Webhooks that receive every tenant's subscribed events (tenants add their own with
    /// `revenue-os webhook add`).
    pub webhooks: Vec<WebhookSettings>,
    /// The console's address as people reach it; the base of every link in a message.
    pub console_url: String,
    /// How often the delivery service looks for work (milliseconds).
    pub interval_ms: u64,
    /// The wait after a first failed attempt, doubled after each further one…
    pub backoff_initial_secs: u64,
    /// …up to this.
    pub backoff_max_secs: u64,
    /// Attempts in all; then the delivery is dead (listed by `webhook deliveries --dead`).
    pub max_attempts: u32,
    /// A delivery older than this is dead whatever its attempts.
    pub max_age_secs: u64,
    /// Bound on one attempt: connect, TLS, request and response.
    pub timeout_secs: u64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            console_url: "http://127.0.0.1:9465".into(),
            interval_ms: 1000,
            backoff_initial_secs: 30,
            backoff_max_secs: 3600,
            max_attempts: 12,
            max_age_secs: 3 * 86_400,
            timeout_secs: 10,
        }
    }
}

/// One global webhook. Its secret is never in a file: `secret_env` names the environment
/// variable that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Names it in deliveries (`global:<name>`) and logs; lower-case letters, digits, `_.-`.
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Event names (docs/notifications.md), or `*` for all.
    pub events: Vec<String>,
    /// The environment variable holding the signing secret (16 characters at least).
    pub secret_env: String,
}

/// The environment variable holding the console's operator token.
pub const CONSOLE_TOKEN_ENV: &str = "REVENUE_OS_CONSOLE_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Human,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error(
        "configuration: {key} in a file carries a password; secrets come only from the environment ({env})"
    )]
    SecretInFile {
        key: &'static str,
        env: &'static str,
    },
}

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(&env)
    }

    /// Loads with an explicit environment, so tests need not mutate the process's.
    pub fn load_from(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut files = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = get("REVENUE_OS_CONFIG") {
            files = files.add_source(config::File::with_name(&path).required(true));
        }
        let from_files: Settings = files.clone().build()?.try_deserialize()?;
        if has_password(&from_files.database.url) {
            return Err(ConfigError::SecretInFile {
                key: "database.url",
                env: "DATABASE_URL",
            });
        }
        if amqp_urls(&from_files.amqp).iter().any(|u| has_password(u)) {
            return Err(ConfigError::SecretInFile {
                key: "amqp.url",
                env: "AMQP_URL",
            });
        }
        let source: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("REVENUE_OS__"))
            .cloned()
            .collect();
        let mut b = files.add_source(
            config::Environment::with_prefix("REVENUE_OS")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("amqp.reply_to_allow")
                .with_list_parse_key("amqp.urls")
                .source(Some(source)),
        );
        if let Some(url) = get("DATABASE_URL") {
            b = b.set_override("database.url", url)?;
        }
        if let Some(url) = get("AMQP_URL") {
            b = b.set_override("amqp.url", url)?;
        }
        Ok(b.build()?.try_deserialize()?)
    }

    /// The effective settings with every password replaced by `***`.
    pub fn redacted(&self) -> Self {
        let mut s = self.clone();
        s.database.url = redact_url(&s.database.url);
        s.amqp.url = redact_url_list(&s.amqp.url);
        s.amqp.urls = s.amqp.urls.iter().map(|u| redact_url_list(u)).collect();
        s
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.worker.shutdown_grace_secs)
    }
}

/// Every broker node URL: `url`'s comma-separated entries, then `urls`, trimmed, empty ones
/// and repeats left out, in the order written.
pub fn amqp_urls(amqp: &AmqpSettings) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for u in amqp
        .url
        .split(',')
        .chain(amqp.urls.iter().flat_map(|u| u.split(',')))
    {
        let u = u.trim();
        if !u.is_empty() && !out.iter().any(|o| o == u) {
            out.push(u.to_owned());
        }
    }
    out
}

/// A comma-separated list of URLs, each redacted.
fn redact_url_list(urls: &str) -> String {
    urls.split(',')
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// `(start, end)` of the password in `scheme://user:password@host`, if any.
fn userinfo_password_span(url: &str) -> Option<(usize, usize)> {
    let auth_start = url.find("://")? + 3;
    let rest = &url[auth_start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..auth_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some((auth_start + colon + 1, auth_start + at))
}

/// `(start, end)` of the value of a `password=` query parameter, if any (libpq accepts one).
fn query_password_span(url: &str) -> Option<(usize, usize)> {
    if !url.contains("://") {
        return None;
    }
    let q = url.find('?')? + 1;
    let mut at = q;
    for pair in url[q..].split('&') {
        if let Some(v) = pair.strip_prefix("password=") {
            let start = at + "password=".len();
            return Some((start, start + v.len()));
        }
        at += pair.len() + 1;
    }
    None
}

/// One `key = value` of a libpq key=value connection string, as byte ranges into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeywordPair {
    pub key: std::ops::Range<usize>,
    /// The value as written: between the quotes when quoted, escapes not yet resolved.
    pub value: std::ops::Range<usize>,
    /// From the key's first byte to the value's last (the closing quote included).
    pub whole: std::ops::Range<usize>,
}

/// The `key=value` pairs of a libpq key=value connection string (`host=db user=app`, also
/// `password = 'with spaces'`), as libpq reads them; empty for a URL.
pub(crate) fn keyword_pairs(dsn: &str) -> Vec<KeywordPair> {
    if dsn.contains("://") {
        return vec![];
    }
    let mut pairs = vec![];
    let mut chars = dsn.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut chars);
        let Some(&(key_start, _)) = chars.peek() else {
            break;
        };
        let mut key_end = dsn.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                key_end = i;
                break;
            }
            chars.next();
        }
        skip_ws(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            break; // not key=value: nothing more to find
        }
        skip_ws(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let start = chars.peek().map_or(dsn.len(), |(i, _)| *i);
        let mut end = dsn.len();
        let mut whole_end = dsn.len();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next(); // an escaped character is part of the value
            } else if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                end = i;
                whole_end = if quoted { i + 1 } else { i };
                break;
            }
        }
        pairs.push(KeywordPair {
            key: key_start..key_end,
            value: start..end,
            whole: key_start..whole_end,
        });
    }
    pairs
}

/// A key=value string's value with its backslash escapes resolved.
pub(crate) fn unescape_keyword_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// `(start, end)` of every `password` value in a libpq key=value connection string: the
/// bytes between the quotes when quoted. Empty for a URL.
fn keyword_password_spans(dsn: &str) -> Vec<(usize, usize)> {
    keyword_pairs(dsn)
        .into_iter()
        .filter(|p| &dsn[p.key.clone()] == "password")
        .map(|p| (p.value.start, p.value.end))
        .collect()
}

/// Every password in a DSN: a URL's user info and `password=` query parameter, or a key=value
/// string's `password`.
fn password_spans(dsn: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = [userinfo_password_span(dsn), query_password_span(dsn)]
        .into_iter()
        .flatten()
        .chain(keyword_password_spans(dsn))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_unstable();
    spans
}

pub fn has_password(dsn: &str) -> bool {
    !password_spans(dsn).is_empty()
}

/// The DSN (URL or key=value) with every password replaced by `***`.
pub fn redact_url(dsn: &str) -> String {
    let mut out = dsn.to_owned();
    // Last first, so the earlier offsets still hold.
    for (a, b) in password_spans(dsn).into_iter().rev() {
        out.replace_range(a..b, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let s = Settings::load_from(&[]).unwrap();
        assert_eq!(s.amqp.prefix, "revenue_os");
        assert_eq!(s.amqp.concurrency, 32);
        assert!(s.database.pool_size >= usize::from(s.amqp.concurrency) + 4);
        assert_eq!(s.kernel.min_cycle_interval_hours, 12);
        assert_eq!(s.console.listen, "127.0.0.1:9465");
        assert_eq!(s.kernel.max_window_days, 400);
        assert_eq!(s.amqp.max_message_bytes, 65536);
        assert!(s.amqp.reply_to_allow.is_empty());
        assert_eq!(s.amqp.tls_ca_file, "");
        assert_eq!(s.database.statement_timeout_ms, 30_000);
        assert_eq!(s.database.idle_in_transaction_timeout_ms, 60_000);
        assert_eq!(s.database.tcp_user_timeout_secs, 20);
    }

    #[test]
    fn the_reply_to_allow_list_comes_from_one_variable() {
        let s = Settings::load_from(&env(&[
            (
                "REVENUE_OS__AMQP__REPLY_TO_ALLOW",
                "ops.replies,audit.replies",
            ),
            ("REVENUE_OS__AMQP__PREFIX", "a,b"),
        ]))
        .unwrap();
        assert_eq!(s.amqp.reply_to_allow, ["ops.replies", "audit.replies"]);
        assert_eq!(s.amqp.prefix, "a,b", "other keys stay strings");
    }

    #[test]
    fn env_layers_override_files() {
        let s = Settings::load_from(&env(&[
            ("REVENUE_OS__AMQP__PREFIX", "t_123"),
            ("REVENUE_OS__DATABASE__POOL_SIZE", "4"),
            ("DATABASE_URL", "postgres://app:s3cret@db/x"),
            ("AMQP_URL", "amqp://u:p@mq:5672/%2f"),
        ]))
        .unwrap();
        assert_eq!(s.amqp.prefix, "t_123");
        assert_eq!(s.database.pool_size, 4);
        assert_eq!(s.database.url, "postgres://app:s3cret@db/x");
        let r = s.redacted();
        assert_eq!(r.database.url, "postgres://app:***@db/x");
        assert_eq!(r.amqp.url, "amqp://u:***@mq:5672/%2f");
        assert!(!serde_json::to_string(&r).unwrap().contains("s3cret"));
    }

    #[test]
    fn password_in_a_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("ros-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.toml");
        std::fs::write(&path, "[database]\nurl = \"postgres://u:pw@h/db\"\n").unwrap();
        let err = Settings::load_from(&env(&[("REVENUE_OS_CONFIG", path.to_str().unwrap())]));
        assert!(matches!(err, Err(ConfigError::SecretInFile { .. })));
    }

    #[test]
    fn a_password_in_the_query_is_a_secret_too() {
        let url = "postgres://u:pw@h/db?sslmode=off&password=s3cret";
        assert!(has_password("postgres://u@h/db?password=x"));
        assert_eq!(
            redact_url(url),
            "postgres://u:***@h/db?sslmode=off&password=***"
        );
    }

    #[test]
    fn tls_options_beside_a_password_do_not_hide_it() {
        for (dsn, want) in [
            (
                "postgres://u:s3cret@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&password=s3cret",
                "postgres://u:***@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&password=***",
            ),
            (
                "host=h sslmode=verify-full sslrootcert='/etc/my ca.pem' password=s3cret",
                "host=h sslmode=verify-full sslrootcert='/etc/my ca.pem' password=***",
            ),
        ] {
            assert_eq!(redact_url(dsn), want, "{dsn}");
        }
        assert!(!has_password(
            "postgres://u@h/db?sslmode=require&sslrootcert=/p"
        ));
    }

    #[test]
    fn a_key_value_dsn_is_redacted_in_every_form() {
        for (dsn, want) in [
            (
                "host=db user=app password=s3cret dbname=x",
                "host=db user=app password=*** dbname=x",
            ),
            ("password=s3cret", "password=***"),
            (
                "host=db password = 's3 cr\\'et' dbname=x",
                "host=db password = '***' dbname=x",
            ),
            ("host=db  password=s3cr\\ et", "host=db  password=***"),
            (
                "host=db passfile=/p password=pässwört",
                "host=db passfile=/p password=***",
            ),
        ] {
            assert!(has_password(dsn), "{dsn}");
            assert_eq!(redact_url(dsn), want, "{dsn}");
            assert!(!redact_url(dsn).contains("s3"), "{dsn}");
        }
        for clean in [
            "host=db user=app dbname=x",
            "host=db password='' dbname=x",
            "user=password",
            "not a dsn",
            "",
        ] {
            assert!(!has_password(clean), "{clean}");
            assert_eq!(redact_url(clean), clean);
        }
    }

    #[test]
    fn a_key_value_password_in_a_file_is_refused_and_redacted_from_the_environment() {
        let dir = std::env::temp_dir().join(format!("ros-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"host=db user=app password=pw dbname=x\"\n",
        )
        .unwrap();
        let err = Settings::load_from(&env(&[("REVENUE_OS_CONFIG", path.to_str().unwrap())]));
        assert!(
            matches!(
                err,
                Err(ConfigError::SecretInFile {
                    key: "database.url",
                    ..
                })
            ),
            "{err:?}"
        );
        let s = Settings::load_from(&env(&[(
            "DATABASE_URL",
            "host=127.0.0.1 user=app password=s3cret dbname=revenue_os",
        )]))
        .unwrap();
        let shown = serde_json::to_string(&s.redacted()).unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
    }

    #[test]
    fn redaction_leaves_passwordless_urls() {
        assert_eq!(
            redact_url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
    }
}
