//! One webhook POST over HTTP/1.1 (`http://`, or `https://` through rustls with the system
//! roots and the ring provider, as the rest of the service), bounded as a whole by a timeout.
//! A connection per attempt: deliveries are few, and a new connection never carries a
//! half-read answer of the last one.

use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Sends webhook requests.
#[derive(Clone)]
pub struct WebhookHttp {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl WebhookHttp {
    /// With the system's root certificates (none found: `https://` webhooks fail their
    /// attempts with the handshake's error, and `http://` ones still work).
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            timeout,
        })
    }

    /// POSTs `body` to `url` with `headers`; the response's status, or why there is none.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        match tokio::time::timeout(self.timeout, self.post_unbounded(url, headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }

    async fn post_unbounded(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let uri: Uri = url.parse().map_err(|e| format!("url {url}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("url {url}: not http:// or https://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("url {url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "revenue-os-webhooks/1");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("host {host}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls {host}: {e}"))?;
            send(TokioIo::new(tls), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
    }
}

async fn send<T>(io: TokioIo<T>, req: Request<http_body_util::Full<Bytes>>) -> Result<u16, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| format!("http: {e}"))?;
    let driver = tokio::spawn(conn);
    let sent = sender.send_request(req).await;
    driver.abort();
    sent.map(|r| r.status().as_u16())
        .map_err(|e| format!("http: {e}"))
}
