//! RabbitMQ only: connections, topology, the consumer, the confirmed publisher, the trigger
//! client. No SQL and no business rules live here.

mod client;
mod disposition;
pub mod dlq;
mod publisher;
mod tap;
mod topology;

pub use client::{TriggerClient, TriggerReply, header};
pub use disposition::Disposition;
pub use publisher::{ConfirmedPublisher, Outgoing};
pub use tap::{Tap, Tapped};
pub use topology::Topology;

use crate::config::AmqpSettings;
use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;

/// The README's command that starts the local RabbitMQ, for the message when it is down.
pub const START_COMMAND: &str = "rabbitmq-server -detached";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("amqp url: {0}")]
    Url(String),
    /// basic.return: mandatory message with no queue bound to its routing key.
    #[error("message {message_id} was returned by the broker: {reply}")]
    Returned { message_id: String, reply: String },
    #[error("message {0} was nacked by the broker")]
    Nacked(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// `amqp.tls_ca_file` cannot be read or holds no certificate.
    #[error("amqp tls: {0}")]
    Tls(String),
}

impl BrokerError {
    /// The broker's port refused the connection: nothing listens there right now.
    pub fn is_refused(&self) -> bool {
        match self {
            BrokerError::Amqp(e) => matches!(
                e.kind(),
                lapin::ErrorKind::IOError(io) if io.kind() == std::io::ErrorKind::ConnectionRefused
            ),
            _ => false,
        }
    }

    /// Connections come back and queues get bound; a bad URL, refused credentials or
    /// permissions (403, 530) and a declare clashing with what exists (406) need an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            BrokerError::Url(_) | BrokerError::Tls(_) => false,
            BrokerError::Amqp(e) => !is_permanent(e),
            BrokerError::Returned { .. } | BrokerError::Nacked(_) | BrokerError::Timeout(_) => true,
        }
    }
}

fn is_permanent(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => matches!(
            p.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED | AMQPSoftError::PRECONDITIONFAILED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        ),
        _ => false,
    }
}

/// Opens a connection with heartbeats on and a recognisable connection name (operators and
/// tests find this process's connections by it in `rabbitmqctl list_connections`).
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Connection, BrokerError> {
    let mut uri: AMQPUri = settings.url.parse().map_err(BrokerError::Url)?;
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(settings.heartbeat_secs);
    }
    if uri.query.connection_timeout.is_none() {
        uri.query.connection_timeout = Some(10_000);
    }
    let tls = tls_config(settings)?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    Ok(Connection::connect_uri_with_config(uri, props, tls, runtime).await?)
}

/// The TLS settings for `amqps://`: the system roots, plus `amqp.tls_ca_file`'s certificates.
/// The file is checked here because lapin skips certificates it cannot parse, which would
/// turn a wrong file into "unknown issuer" at the handshake.
fn tls_config(settings: &AmqpSettings) -> Result<OwnedTLSConfig, BrokerError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let path = settings.tls_ca_file.trim();
    if path.is_empty() {
        return Ok(OwnedTLSConfig::default());
    }
    let bad = |why: String| BrokerError::Tls(format!("amqp.tls_ca_file {path}: {why}"));
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pem),
    })
}

/// The broker's host and port from an AMQP URL (`None` if it does not parse).
pub fn address(url: &str) -> Option<(String, u16)> {
    let uri: AMQPUri = url.parse().ok()?;
    Some((uri.authority.host, uri.authority.port))
}

/// Whether the broker's port accepts a TCP connection within `within`.
pub async fn reachable(host: &str, port: u16, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

/// A server-named, exclusive, auto-deleted queue with a no-ack consumer on it: the private
/// inbox of a `reply_to` wait or a tap. It disappears with its connection.
pub(crate) async fn private_inbox(
    ch: &lapin::Channel,
) -> Result<(String, lapin::Consumer), BrokerError> {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((q.name().to_string(), consumer))
}

/// The connection name a process with this prefix uses: `<prefix>/<role>/<uuid>`.
pub fn connection_name(prefix: &str, role: &str) -> String {
    format!("{prefix}/{role}/{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::ErrorKind;
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};

    fn protocol(kind: AMQPErrorKind) -> BrokerError {
        BrokerError::Amqp(ErrorKind::ProtocolError(AMQPError::new(kind, "test".into())).into())
    }

    #[test]
    fn refused_clashing_and_not_allowed_are_permanent() {
        for kind in [
            AMQPSoftError::ACCESSREFUSED.into(),
            AMQPSoftError::PRECONDITIONFAILED.into(),
            AMQPHardError::NOTALLOWED.into(),
        ] {
            let e = protocol(kind);
            assert!(!e.is_retryable(), "{e}");
        }
        assert!(!BrokerError::Url("nope".into()).is_retryable());
        assert!(!BrokerError::Tls("no such file".into()).is_retryable());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("ros-amqp-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let mut settings = crate::config::Settings::load_from(&[]).unwrap().amqp;
        assert_eq!(tls_config(&settings).unwrap(), OwnedTLSConfig::default());
        for path in [empty, dir.join("missing.pem")] {
            settings.tls_ca_file = path.display().to_string();
            let e = tls_config(&settings).unwrap_err();
            assert!(matches!(e, BrokerError::Tls(_)), "{e}");
            assert!(e.to_string().contains(&settings.tls_ca_file), "{e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lost_connections_and_other_protocol_errors_are_retried() {
        for kind in [
            AMQPSoftError::NOTFOUND.into(),
            AMQPSoftError::RESOURCELOCKED.into(),
            AMQPHardError::CONNECTIONFORCED.into(),
            AMQPHardError::INTERNALERROR.into(),
        ] {
            let e = protocol(kind);
            assert!(e.is_retryable(), "{e}");
        }
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(BrokerError::Amqp(io.into()).is_retryable());
        assert!(BrokerError::Timeout("publisher confirm").is_retryable());
        assert!(BrokerError::Nacked("m".into()).is_retryable());
    }
}
