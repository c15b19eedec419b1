//! `demo-app --name NAME --listen ADDR [--tcp-echo] [--fail-status CODE]`: answers every
//! HTTP request with `{"service": NAME, "path": PATH, "requests": N}` (200), `GET /headers`
//! with the request's headers as a JSON object (what the sidecar passed on), `/delay/<ms>`
//! after that long, `/status/<code>` with that status, `/flaky/<percent>` with 503 for that
//! share of its calls (spread evenly: `/flaky/50` fails every other call), `/echo` with the
//! request body once it has all arrived, `/stall/<ms>` with its headers and `partial\n` at
//! once and the rest of its (chunked) body, `rest\n`, only after that long (an upstream that
//! stalls mid-body), `/trickle/<count>/<ms>` with `count` chunks `chunk <i>\n`, one every
//! `ms` (a slowly streaming answer), or echoes TCP bytes back. `--fail-status CODE` makes
//! every HTTP answer that status (an unhealthy instance). It stands for the Kong Air
//! services behind the sidecars in the demo and in the end-to-end tests.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

struct Args {
    name: String,
    listen: SocketAddr,
    tcp_echo: bool,
    fail_status: Option<u16>,
}

fn parse_args() -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut tcp_echo = false;
    let mut fail_status = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--name" => name = it.next(),
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--tcp-echo" => tcp_echo = true,
            "--fail-status" => {
                let v = it.next().ok_or("--fail-status needs a status code")?;
                let code = v
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or(format!("--fail-status {v}: not an HTTP status code"))?;
                fail_status = Some(code);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        tcp_echo,
        fail_status,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "Error: {e}\nusage: demo-app --name NAME --listen ADDR [--tcp-echo] [--fail-status CODE]"
            );
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
    let flaky = Arc::new(AtomicU64::new(0));
    let fail_status = args.fail_status;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, count, flaky) = (name.clone(), count.clone(), flaky.clone());
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
                let path = req.uri().path();
                let status = fail_status
                    .or_else(|| {
                        path.strip_prefix("/status/")
                            .and_then(|c| c.parse::<u16>().ok())
                    })
                    .or_else(|| {
                        let pct = path.strip_prefix("/flaky/")?.parse::<u64>().ok()?.min(100);
                        // Call k (from 1) fails when it takes the failure count to the next
                        // whole number: exactly `pct` failures every 100 calls, spread out.
                        let k = flaky.fetch_add(1, Ordering::Relaxed) + 1;
                        ((k * pct) / 100 != ((k - 1) * pct) / 100).then_some(503)
                    })
                    .and_then(|c| hyper::StatusCode::from_u16(c).ok())
                    .unwrap_or(hyper::StatusCode::OK);
                // Routes that stream their answer, or read the request's body first.
                let streamed = streamed_route(path);
                let echo = path == "/echo";
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
                    let body = if let Some(route) = streamed {
                        Either::Right(route.start())
                    } else if echo {
                        // The whole request body (empty if it broke off), once it arrived.
                        let got = req.into_body().collect().await;
                        Either::Left(Full::new(got.map(|b| b.to_bytes()).unwrap_or_default()))
                    } else {
                        Either::Left(Full::new(Bytes::from(body)))
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header(
                                "content-type",
                                if streamed.is_some() || echo {
                                    "text/plain"
                                } else {
                                    "application/json"
                                },
                            )
                            .body(body)
                            .unwrap_or_else(|_| Response::new(Either::Left(Full::default()))),
                    )
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// An answer streamed chunk by chunk: `/stall/<ms>` or `/trickle/<count>/<ms>` (waits of at
/// most a minute).
#[derive(Debug, Clone, Copy)]
enum Streamed {
    Stall(Duration),
    Trickle(u32, Duration),
}

fn streamed_route(path: &str) -> Option<Streamed> {
    let ms = |v: &str| {
        v.parse::<u64>()
            .ok()
            .map(|ms| Duration::from_millis(ms.min(60_000)))
    };
    if let Some(wait) = path.strip_prefix("/stall/") {
        return ms(wait).map(Streamed::Stall);
    }
    let (count, every) = path.strip_prefix("/trickle/")?.split_once('/')?;
    Some(Streamed::Trickle(count.parse().ok()?, ms(every)?))
}

impl Streamed {
    /// The body, fed by a task that sends each chunk when its time comes (and stops when
    /// the client is gone).
    fn start(self) -> Chunks {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            match self {
                Streamed::Stall(wait) => {
                    if tx.send(Bytes::from_static(b"partial\n")).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(wait).await;
                    let _ = tx.send(Bytes::from_static(b"rest\n")).await;
                }
                Streamed::Trickle(count, every) => {
                    for i in 1..=count {
                        if i > 1 {
                            tokio::time::sleep(every).await;
                        }
                        if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Chunks(rx)
    }
}

/// A response body sent as its chunks come from a channel; it ends when the sender goes.
struct Chunks(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
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
