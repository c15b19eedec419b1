//! `demo-app --name NAME --listen ADDR [--tcp-echo]`: answers every HTTP request with
//! `{"service": NAME, "path": PATH, "requests": N}` (200), `GET /headers` with the request's
//! headers as a JSON object (what the sidecar passed on), `/delay/<ms>` after that long, or
//! echoes TCP bytes back. It stands
//! for the Kong Air services behind the sidecars in the demo and in the end-to-end tests.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

struct Args {
    name: String,
    listen: SocketAddr,
    tcp_echo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut tcp_echo = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--name" => name = it.next(),
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--tcp-echo" => tcp_echo = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        tcp_echo,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}\nusage: demo-app --name NAME --listen ADDR [--tcp-echo]");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!(
        "{} listening on {} ({})",
        args.name,
        args.listen,
        if args.tcp_echo { "tcp echo" } else { "http" }
    );
    let name: Arc<str> = Arc::from(args.name);
    let count = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, count) = (name.clone(), count.clone());
        if args.tcp_echo {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
            continue;
        }
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                // `/delay/<ms>`: answer after that long (at most a minute), as a slow or hung
                // upstream would.
                let delay = req
                    .uri()
                    .path()
                    .strip_prefix("/delay/")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .map(|ms| std::time::Duration::from_millis(ms.min(60_000)));
                let body = if req.uri().path() == "/headers" {
                    headers_json(&req)
                } else {
                    format!(
                        "{{\"service\":\"{}\",\"path\":\"{}\",\"requests\":{n}}}\n",
                        name,
                        req.uri().path()
                    )
                };
                async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The request's headers as a JSON object (name -> value; repeated names keep the last).
fn headers_json(req: &Request<hyper::body::Incoming>) -> String {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), serde_json::Value::String(value))
        })
        .collect();
    format!("{}\n", serde_json::Value::Object(headers))
}
