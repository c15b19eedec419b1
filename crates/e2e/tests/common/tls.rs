//! A small blocking TLS client for tests: trust a control plane's generated certificate,
//! finish (or not) a handshake, and make an HTTPS request.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

fn connect(addr: &str) -> TcpStream {
    let sock: SocketAddr = addr.parse().expect("address");
    TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// A TLS client trusting the certificate in `ca_file`, offering `alpn`.
pub fn tls_config(ca_file: &std::path::Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read_to_string(ca_file).expect("ca file");
    let roots = aerie_identity::load_cert_chain(&pem).expect("ca pem");
    Arc::new(
        aerie_identity::client_config(aerie_identity::ServerTrust::Roots(roots), alpn)
            .expect("TLS client"),
    )
}

/// Connects and completes a TLS handshake.
pub fn tls_connect(
    addr: &str,
    name: &str,
    cfg: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut sock = connect(addr);
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(cfg.clone(), server_name).expect("client");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    rustls::StreamOwned::new(conn, sock)
}

/// `GET path` over HTTPS (with `Connection: close`): the status and body.
pub fn https_get(
    addr: &str,
    name: &str,
    cfg: &Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = tls_connect(addr, name, cfg);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    // The server may close without close_notify: keep what arrived.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
