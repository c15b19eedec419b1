//! A small HTTP/1.1 client for the control plane's REST API: hyper over a tokio TCP stream,
//! with TLS from tokio-rustls (ring provider) for `https://` addresses.
//!
//! One connection per request: kumactl makes a handful of calls per run, so pooling would
//! only add state.

use aerie_identity::ServerTrust;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::config::ApiServer;

/// Where the control plane is: scheme, host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// No trailing slash; empty for the root.
    pub path_prefix: String,
    /// The URL as given, for messages.
    pub display: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl> {
        let invalid = |why: &str| anyhow!("API Server URL is invalid: \"{url}\": {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("missing http:// or https://"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        if authority.contains('@') {
            return Err(invalid("user information in the address is not supported"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| invalid("bad port"))?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| invalid("bad port"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        Ok(BaseUrl {
            https,
            host,
            port,
            authority: authority.to_string(),
            path_prefix: path.trim_end_matches('/').to_string(),
            display: url.to_string(),
        })
    }
}

/// A response: status and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            anyhow!("the control plane answered with a body that is not valid JSON: {e}")
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The Kuma-shaped error in the body (or the raw body when it is not one).
    pub fn api_error(&self) -> ApiError {
        ApiError::from_response(self)
    }
}

/// Kuma's error body: `{type, status, title, detail, invalid_parameters: [{field, reason}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub invalid_parameters: Vec<(String, String)>,
    /// The body, when it is not a Kuma error.
    pub raw: String,
}

impl ApiError {
    pub fn from_response(resp: &Response) -> ApiError {
        let mut e = ApiError {
            status: resp.status,
            title: String::new(),
            detail: String::new(),
            invalid_parameters: vec![],
            raw: String::new(),
        };
        match serde_json::from_slice::<Value>(&resp.body) {
            Ok(Value::Object(o)) if o.get("title").is_some_and(Value::is_string) => {
                let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                e.title = s("title");
                e.detail = s("detail");
                if let Some(Value::Array(params)) = o.get("invalid_parameters") {
                    for p in params {
                        let f = p.get("field").and_then(Value::as_str).unwrap_or("");
                        let r = p.get("reason").and_then(Value::as_str).unwrap_or("");
                        e.invalid_parameters.push((f.to_string(), r.to_string()));
                    }
                }
            }
            _ => e.raw = one_line(&resp.text()),
        }
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.title.is_empty() {
            if self.raw.is_empty() {
                return write!(f, "the control plane answered with status {}", self.status);
            }
            return write!(f, "(status {}) {}", self.status, self.raw);
        }
        if self.detail.is_empty() {
            write!(f, "{}", self.title)?;
        } else {
            write!(f, "{} ({})", self.title, self.detail)?;
        }
        for (field, reason) in &self.invalid_parameters {
            write!(f, ";{field}={reason} ")?;
        }
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A client for one control plane.
#[derive(Clone)]
pub struct Client {
    base: BaseUrl,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    pub fn new(api: &ApiServer, timeout: Duration) -> Result<Client> {
        let base = BaseUrl::parse(&api.url)?;
        let tls = if base.https {
            Some(Arc::new(tls_config(api)?))
        } else {
            None
        };
        Ok(Client {
            base,
            token: api.token().map(str::to_string),
            tls,
            timeout,
        })
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Response> {
        self.request("GET", path, None).await
    }

    pub async fn delete(&self, path: &str) -> Result<Response> {
        self.request("DELETE", path, None).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Response> {
        self.request("PUT", path, Some(serde_json::to_vec(body)?))
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Response> {
        self.request("POST", path, Some(serde_json::to_vec(body)?))
            .await
    }

    /// Sends one request; `path` starts with `/` and may carry a query.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response> {
        match tokio::time::timeout(self.timeout, self.request_inner(method, path, body)).await {
            Ok(r) => r,
            Err(_) => bail!(
                "the control plane at {} did not answer within {} (see --api-timeout)",
                self.base.display,
                crate::format_duration(self.timeout)
            ),
        }
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response> {
        let uri = format!("{}{}", self.base.path_prefix, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(hyper::header::HOST, &self.base.authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("kumactl/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .with_context(|| format!("could not build a request for {uri}"))?;

        let connect_err = |e: &dyn std::fmt::Display| {
            anyhow!(
                "could not connect to the control plane at {}: {e}",
                self.base.display
            )
        };
        let tcp = TcpStream::connect((self.base.host.as_str(), self.base.port))
            .await
            .map_err(|e| connect_err(&e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => send(TokioIo::new(tcp), req).await,
            Some(cfg) => {
                let name = ServerName::try_from(self.base.host.clone())
                    .map_err(|e| connect_err(&format!("invalid server name: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect_err(&format!("TLS handshake failed: {e}")))?;
                send(TokioIo::new(tls), req).await
            }
        }
        .map_err(|e| {
            anyhow!(
                "request to the control plane at {} failed: {e:#}",
                self.base.display
            )
        })
    }
}

async fn send<T>(io: T, req: Request<Full<Bytes>>) -> Result<Response>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(Response { status, body })
}

/// TLS settings of a control plane entry: its CA file, or no verification at all with
/// `skipVerify`. There are no system roots on these machines, so one of them is required.
pub fn tls_config(api: &ApiServer) -> Result<rustls::ClientConfig> {
    let trust = if api.skip_verify {
        ServerTrust::SkipVerify
    } else if let Some(ca) = api.ca_cert_file.as_deref().filter(|c| !c.is_empty()) {
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| anyhow!("could not read the CA certificate file {ca}: {e}"))?
        {
            certs.push(
                cert.map_err(|e| anyhow!("could not read the CA certificate file {ca}: {e}"))?,
            );
        }
        if certs.is_empty() {
            bail!("the CA certificate file {ca} holds no PEM certificate");
        }
        ServerTrust::Roots(certs)
    } else {
        bail!(
            "{} uses https but no CA is configured and there are no system root certificates: add the control plane with --ca-cert-file FILE (or --skip-verify)",
            api.url
        );
    };
    aerie_identity::client_config(trust, b"http/1.1").map_err(|e| {
        anyhow!(
            "invalid CA certificate in {}: {e}",
            api.ca_cert_file.as_deref().unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = BaseUrl::parse("http://localhost:5681").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path_prefix.as_str()),
            (false, "localhost", 5681, "")
        );
        let u = BaseUrl::parse("https://cp.example.com/kuma/").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path_prefix.as_str()),
            (true, "cp.example.com", 443, "/kuma")
        );
        assert_eq!(u.authority, "cp.example.com");
        let u = BaseUrl::parse("http://[::1]:5681").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 5681, "[::1]:5681")
        );
        for bad in [
            "localhost:5681",
            "ftp://x",
            "http://",
            "http://h:port",
            "http://[::1",
            "http://u@h",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_kuma_errors_like_kumactl() {
        let body = r#"{"type":"/std-errors","status":400,"title":"Could not process a resource","detail":"Resource is not valid","invalid_parameters":[{"field":"path","reason":"cannot be empty"},{"field":"mesh","reason":"cannot be empty"}]}"#;
        let e = Response {
            status: 400,
            body: Bytes::from(body),
        }
        .api_error();
        assert_eq!(
            e.to_string(),
            "Could not process a resource (Resource is not valid);path=cannot be empty ;mesh=cannot be empty "
        );
        let e = Response {
            status: 502,
            body: Bytes::from("bad\ngateway"),
        }
        .api_error();
        assert_eq!(e.to_string(), "(status 502) bad gateway");
        let e = Response {
            status: 500,
            body: Bytes::new(),
        }
        .api_error();
        assert_eq!(e.to_string(), "the control plane answered with status 500");
    }

    #[test]
    fn https_needs_a_ca_or_skip_verify() {
        let api = ApiServer::new("https://localhost:5682");
        let err = tls_config(&api).unwrap_err().to_string();
        assert!(err.contains("--ca-cert-file"), "{err}");
        let mut api = ApiServer::new("https://localhost:5682");
        api.skip_verify = true;
        assert!(tls_config(&api).is_ok());
        let mut api = ApiServer::new("https://localhost:5682");
        api.ca_cert_file = Some("/nonexistent/ca.pem".into());
        assert!(
            tls_config(&api)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/ca.pem")
        );
    }

    #[tokio::test]
    async fn connection_refused_is_a_clear_error() {
        // Bind then drop to get a port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let c = Client::new(&ApiServer::new(&url), Duration::from_secs(5)).unwrap();
        let err = c.get("/").await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "could not connect to the control plane at {url}: "
            )),
            "{err}"
        );
    }

    #[tokio::test]
    async fn times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let c = Client::new(&ApiServer::new(&url), Duration::from_millis(200)).unwrap();
        let err = c.get("/").await.unwrap_err().to_string();
        assert!(err.contains("did not answer within 200ms"), "{err}");
    }
}
