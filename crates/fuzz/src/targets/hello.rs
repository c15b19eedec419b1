//! The zone ingress's ClientHello reader (`crates/dp/src/ingress/hello.rs`): the first bytes
//! of every connection from another zone, before any TLS. Seeds are real ClientHellos from
//! rustls (several server names, with and without ALPN), also fragmented over several
//! records. Invariant: every prefix of a complete ClientHello is `Incomplete` (or already
//! complete), never refused: the ingress must wait for the rest, not drop the connection.

use std::sync::Arc;

use aerie_dp::fuzzing::{Hello, parse_client_hello};
use rustls::pki_types::ServerName;

use crate::{Rng, Target, mutate_bytes};

/// The ingress's limit on a ClientHello (as `Ingress` uses it), and a small one.
const MAX_HELLO: usize = 16 * 1024;
const SMALL_MAX: usize = 100;

pub struct ClientHello {
    seeds: Vec<Vec<u8>>,
}

/// The first flight rustls sends for `server_name`.
fn rustls_hello(server_name: &str, alpn: bool) -> Option<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let name = ServerName::try_from(server_name.to_string()).ok()?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).ok()?;
    }
    Some(out)
}

/// `hello` (one record) re-split into records of at most `size` payload bytes.
fn fragment(hello: &[u8], size: usize) -> Vec<u8> {
    let Some(payload) = hello.get(5..) else {
        return hello.to_vec();
    };
    let mut out = Vec::new();
    for chunk in payload.chunks(size.max(1)) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

impl ClientHello {
    pub fn new() -> ClientHello {
        let mut seeds: Vec<Vec<u8>> = [
            ("backend.default.mesh", false),
            ("web_default_svc_8080.mesh", true),
            ("a", false),
            ("xn--bcher-kva.example", true),
            ("10.0.0.1", false),
            (&"s".repeat(200), false),
        ]
        .iter()
        .filter_map(|(name, alpn)| rustls_hello(name, *alpn))
        .collect();
        let fragmented: Vec<Vec<u8>> = seeds
            .iter()
            .flat_map(|h| [fragment(h, 1), fragment(h, 3), fragment(h, 100)])
            .collect();
        seeds.extend(fragmented);
        ClientHello { seeds }
    }
}

impl Default for ClientHello {
    fn default() -> Self {
        Self::new()
    }
}

const TLS_TOKENS: &[&[u8]] = &[
    &[22, 3, 1],
    &[22, 3, 3, 0x40, 0x00],
    &[0, 0],
    &[0, 0, 0, 5, 0, 3, 0, 0, 0],
    &[0xff, 0xff],
    &[0x40, 0x01],
    b"GET / HTTP/1.1\r\n",
];

impl Target for ClientHello {
    fn name(&self) -> &'static str {
        "hello"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let Some(mut input) = rng.pick(&self.seeds).cloned() else {
            return Vec::new();
        };
        if rng.chance(90) {
            let other = rng.pick(&self.seeds).cloned().unwrap_or_default();
            mutate_bytes(&mut input, rng, TLS_TOKENS, &other);
        }
        if rng.chance(20) {
            input = fragment(&input, 1 + rng.below(64));
        }
        input
    }

    fn run(&mut self, input: &[u8]) {
        let full = parse_client_hello(input, MAX_HELLO);
        let _ = parse_client_hello(input, SMALL_MAX);
        if let Hello::Complete { .. } = full {
            // Every prefix is a valid beginning: never refused.
            for cut in [
                0,
                1,
                2,
                5,
                6,
                9,
                input.len() / 2,
                input.len().saturating_sub(1),
            ] {
                let Some(prefix) = input.get(..cut) else {
                    continue;
                };
                let partial = parse_client_hello(prefix, MAX_HELLO);
                assert!(
                    matches!(partial, Hello::Incomplete | Hello::Complete { .. }),
                    "a prefix ({cut} bytes) of a complete ClientHello is {partial:?}"
                );
            }
        }
    }
}
