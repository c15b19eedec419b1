//! `demo-app --name NAME --listen ADDR [--tcp-echo] [--fail-status CODE] [--fail-percent P]`:
//! answers every HTTP request with `{"service": NAME, "path": PATH, "requests": N}` (200),
//! `GET /headers` with the request's headers as a JSON object (what the sidecar passed on),
//! `/delay/<ms>` after that long, `/status/<code>` with that status, `/flaky/<percent>` with
//! 503 for that share of its calls (spread evenly: `/flaky/50` fails every other call),
//! `/bytes/<n>` with a body of n bytes,
//! `/fail-once/<id>?status=<code>&header=<name>:<value>...` with that status (503 by
//! default) and those response headers the first time `<id>` is asked for and 200 after
//! (the body's `seen` says how many times it was asked: a retry shows as 2), `/echo` with
//! the request body once it has all arrived, `/stall/<ms>` with its headers and `partial\n`
//! at once and the rest of its (chunked) body, `rest\n`, only after that long (an upstream
//! that stalls mid-body), `/trickle/<count>/<ms>` with `count` chunks `chunk <i>\n`, one
//! every `ms` (a slowly streaming answer), `/health` with 200 (`healthy`) or, after an odd
//! number of calls to `/toggle-health` (which answers the new state), 503 (`unhealthy`): a
//! health check's target, `/last` with the last other request it got as
//! `{"method", "path", "host", "body"}` (the body only for `/echo`; what a mirror target
//! saw), `/metrics` with Prometheus text counting the requests answered
//! (`demo_requests_total{app="NAME"}`; not counted itself), or echoes TCP bytes back. `--fail-status CODE`
//! makes every HTTP answer that status (an unhealthy instance); with `--fail-percent P`,
//! only P percent of them, spread evenly (an instance failing some of the time; 500 unless
//! `--fail-status` says otherwise). It stands for the Kong Air services behind the sidecars
//! in the demo and in the end-to-end tests.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    fail_percent: Option<u64>,
}

/// Ids `/fail-once/` has seen, and how often; forgotten past this many.
const MAX_FAIL_ONCE_IDS: usize = 100_000;

/// Whether call `k` (from 1) of a share failing `pct` percent fails: when it takes the
/// failure count to the next whole number, so exactly `pct` of every 100 calls fail,
/// spread out.
fn fails(k: u64, pct: u64) -> bool {
    (k * pct) / 100 != ((k - 1) * pct) / 100
}

fn parse_args() -> Result<Args, String> {
    let mut name = None;
    let mut listen = None;
    let mut tcp_echo = false;
    let mut fail_status = None;
    let mut fail_percent = None;
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
            "--fail-percent" => {
                let v = it.next().ok_or("--fail-percent needs a percentage")?;
                let pct = v
                    .parse::<u64>()
                    .ok()
                    .filter(|p| *p <= 100)
                    .ok_or(format!("--fail-percent {v}: not a percentage (0-100)"))?;
                fail_percent = Some(pct);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        name: name.ok_or("--name is required")?,
        listen: listen.ok_or("--listen is required")?,
        tcp_echo,
        fail_status,
        fail_percent,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "Error: {e}\nusage: demo-app --name NAME --listen ADDR [--tcp-echo] [--fail-status CODE] [--fail-percent P]"
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
    let failed = Arc::new(AtomicU64::new(0));
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    // The last request other than `/last`, as `/last` answers it.
    let last: Arc<Mutex<String>> = Arc::new(Mutex::new("null\n".to_owned()));
    // What `/health` answers; `/toggle-health` flips it.
    let unhealthy = Arc::new(AtomicBool::new(false));
    // Every answer fails with --fail-status alone; a share of them with --fail-percent.
    let fail_share = match (args.fail_status, args.fail_percent) {
        (_, Some(pct)) => Some((args.fail_status.unwrap_or(500), pct)),
        (Some(code), None) => Some((code, 100)),
        (None, None) => None,
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, count, flaky) = (name.clone(), count.clone(), flaky.clone());
        let (failed, seen, unhealthy) = (failed.clone(), seen.clone(), unhealthy.clone());
        let last = last.clone();
        if args.tcp_echo {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
            continue;
        }
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                if req.uri().path() == "/metrics" {
                    // Prometheus text: the requests answered so far (an application's own
                    // metrics, for MeshMetric's `applications`).
                    let body = format!(
                        "# HELP demo_requests_total Requests answered.\n# TYPE demo_requests_total counter\ndemo_requests_total{{app=\"{name}\"}} {}\n",
                        count.load(Ordering::Relaxed)
                    );
                    let resp = Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Either::Left(Full::new(Bytes::from(body))))
                        .unwrap_or_else(|_| Response::new(Either::Left(Full::default())));
                    return Box::pin(async move { Ok::<_, Infallible>(resp) }) as Answer;
                }
                if req.uri().path() == "/last" {
                    let body = last.lock().map(|l| l.clone()).unwrap_or_default();
                    let resp = Response::builder()
                        .header("content-type", "application/json")
                        .body(Either::Left(Full::new(Bytes::from(body))))
                        .unwrap_or_else(|_| Response::new(Either::Left(Full::default())));
                    return Box::pin(async move { Ok::<_, Infallible>(resp) }) as Answer;
                }
                let seen_request = |body: Option<&[u8]>| {
                    let record = serde_json::json!({
                        "method": req.method().as_str(),
                        "path": req.uri().path(),
                        "host": req.headers().get("host").map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
                        "body": body.map(|b| String::from_utf8_lossy(b).into_owned()),
                    });
                    format!("{record}\n")
                };
                let head_record = seen_request(None);
                let last = last.clone();
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
                let failing = fail_share.and_then(|(code, pct)| {
                    let k = failed.fetch_add(1, Ordering::Relaxed) + 1;
                    fails(k, pct).then_some(code)
                });
                let health = match path {
                    "/health" => Some(unhealthy.load(Ordering::Relaxed)),
                    "/toggle-health" => Some(!unhealthy.fetch_xor(true, Ordering::Relaxed)),
                    _ => None,
                };
                let once = path
                    .strip_prefix("/fail-once/")
                    .map(|id| fail_once(&seen, id, req.uri().query().unwrap_or("")));
                let status = failing
                    .or_else(|| (path == "/health" && health == Some(true)).then_some(503))
                    .or_else(|| once.as_ref().and_then(|o| o.status))
                    .or_else(|| {
                        path.strip_prefix("/status/")
                            .and_then(|c| c.parse::<u16>().ok())
                    })
                    .or_else(|| {
                        let pct = path.strip_prefix("/flaky/")?.parse::<u64>().ok()?.min(100);
                        let k = flaky.fetch_add(1, Ordering::Relaxed) + 1;
                        fails(k, pct).then_some(503)
                    })
                    .and_then(|c| hyper::StatusCode::from_u16(c).ok())
                    .unwrap_or(hyper::StatusCode::OK);
                // Routes that stream their answer, or read the request's body first.
                let streamed = streamed_route(path);
                let echo = path == "/echo";
                let body = if req.uri().path() == "/headers" {
                    headers_json(&req)
                } else if let Some(down) = health {
                    format!(
                        "{{\"service\":\"{}\",\"health\":\"{}\"}}\n",
                        name,
                        if down { "unhealthy" } else { "healthy" }
                    )
                } else if let Some(n) = path
                    .strip_prefix("/bytes/")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    // `/bytes/<n>`: a body of n bytes (at most 10 MiB).
                    "x".repeat(n.min(10 << 20))
                } else if let Some(o) = &once {
                    format!(
                        "{{\"service\":\"{}\",\"path\":\"{}\",\"requests\":{n},\"seen\":{}}}\n",
                        name,
                        req.uri().path(),
                        o.seen
                    )
                } else {
                    format!(
                        "{{\"service\":\"{}\",\"path\":\"{}\",\"requests\":{n}}}\n",
                        name,
                        req.uri().path()
                    )
                };
                let extra_headers = once.map(|o| o.headers).unwrap_or_default();
                if !echo && let Ok(mut l) = last.lock() {
                    *l = head_record.clone();
                }
                Box::pin(async move {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let body = if let Some(route) = streamed {
                        Either::Right(route.start())
                    } else if echo {
                        // The whole request body (empty if it broke off), once it arrived.
                        let got = req.into_body().collect().await;
                        let got = got.map(|b| b.to_bytes()).unwrap_or_default();
                        if let Ok(mut l) = last.lock() {
                            let mut record: serde_json::Value =
                                serde_json::from_str(&head_record).unwrap_or_default();
                            record["body"] = String::from_utf8_lossy(&got).into_owned().into();
                            *l = format!("{record}\n");
                        }
                        Either::Left(Full::new(got))
                    } else {
                        Either::Left(Full::new(Bytes::from(body)))
                    };
                    let mut resp = Response::builder().status(status).header(
                        "content-type",
                        if streamed.is_some() || echo {
                            "text/plain"
                        } else {
                            "application/json"
                        },
                    );
                    for (k, v) in extra_headers {
                        resp = resp.header(k, v);
                    }
                    Ok::<_, Infallible>(
                        resp.body(body)
                            .unwrap_or_else(|_| Response::new(Either::Left(Full::default()))),
                    )
                }) as Answer
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One answer of the app, whichever route made it.
type Answer = Pin<
    Box<
        dyn std::future::Future<Output = Result<Response<Either<Full<Bytes>, Chunks>>, Infallible>>
            + Send,
    >,
>;

/// What `/fail-once/<id>` answers this time.
struct FailOnce {
    /// The failure's status, the first time only.
    status: Option<u16>,
    /// Response headers, the first time only.
    headers: Vec<(String, String)>,
    /// How many times `id` was asked for, this one included.
    seen: u64,
}

/// Counts a call of `/fail-once/<id>`; the first one answers the query's `status` (503 by
/// default) with its `header=<name>:<value>` headers.
fn fail_once(seen: &Mutex<HashMap<String, u64>>, id: &str, query: &str) -> FailOnce {
    let n = {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_FAIL_ONCE_IDS && !seen.contains_key(id) {
            seen.clear();
        }
        let n = seen.entry(id.to_owned()).or_insert(0);
        *n += 1;
        *n
    };
    if n > 1 {
        return FailOnce {
            status: None,
            headers: Vec::new(),
            seen: n,
        };
    }
    let mut status = 503;
    let mut headers = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("status", v)) => {
                if let Some(code) = v.parse::<u16>().ok().filter(|c| (100..=599).contains(c)) {
                    status = code;
                }
            }
            Some(("header", v)) => {
                if let Some((name, value)) = v.split_once(':') {
                    headers.push((name.to_owned(), value.to_owned()));
                }
            }
            _ => {}
        }
    }
    FailOnce {
        status: Some(status),
        headers,
        seen: n,
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
