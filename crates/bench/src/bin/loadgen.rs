//! `aerie-loadgen`: a fixed-rate (open-loop) HTTP/1.1 load generator.
//!
//! Request `k` has an intended send time `start + k / rate`, fixed before the run. A
//! dedicated OS thread releases each request at its intended time (a precise sleep, not the
//! 1 ms tokio timer); `--connections` keep-alive connections take released requests in
//! order. Latency is measured from the *intended* time to the end of the response, so a
//! slow response delays the requests queued behind it and that delay is counted
//! (coordinated omission corrected, as wrk2 and oha do).
//!
//! Output: one `key=value` line (for scripts) and, with `--json`, a JSON object instead.

// A benchmark tool run by hand: a panic aborts the measurement, as it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

#[derive(Parser, Debug)]
#[command(about = "Fixed-rate HTTP/1.1 load generator (coordinated-omission corrected)")]
struct Args {
    /// Target URL, `http://127.x.y.z:port/path` (loopback only).
    url: String,
    /// Requests per second (total, across all connections).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 16)]
    connections: usize,
    /// Measured duration in seconds (bounded to 300).
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up at the same rate before the measured part, in seconds.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// A request still unanswered this many seconds after its intended time is an error.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Print JSON instead of a key=value line.
    #[arg(long)]
    json: bool,
}

/// One released request: its sequence number and intended send time.
struct Job {
    seq: u64,
    intended: Instant,
}

#[derive(Default)]
struct Stats {
    latencies_ns: Vec<u64>,
    errors: u64,
    non_2xx: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate == 0 || args.connections == 0 || args.duration == 0 {
        bail!("--rate, --connections and --duration must be positive");
    }
    if args.duration + args.warmup > 300 {
        bail!("duration + warmup is bounded to 300 s");
    }
    let uri: http::Uri = args.url.parse().context("invalid URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported");
    }
    let host = uri.host().context("URL without host")?.to_string();
    let ip: std::net::Ipv4Addr = host
        .parse()
        .context("the host must be a 127.0.0.0/8 address")?;
    if !ip.is_loopback() {
        bail!("only loopback targets (127.0.0.0/8) are allowed, got {ip}");
    }
    let port = uri.port_u16().unwrap_or(80);
    let addr = std::net::SocketAddr::from((ip, port));
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());

    let interval_ns = 1_000_000_000 / args.rate as u64;
    let warmup_n = args.warmup * args.rate as u64;
    let total_n = warmup_n + args.duration * args.rate as u64;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(200);
    let late_max_ns = Arc::new(AtomicU64::new(0));

    // The pacer: a plain thread with a 1 µs timer slack, so requests leave on time even
    // though tokio's timer wheel has a 1 ms granularity.
    let pacer = {
        let late_max_ns = late_max_ns.clone();
        std::thread::spawn(move || {
            // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
            #[allow(unsafe_code)]
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64)
            };
            for seq in 0..total_n {
                let intended = start + Duration::from_nanos(interval_ns * seq);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let late = Instant::now().saturating_duration_since(intended);
                late_max_ns.fetch_max(late.as_nanos() as u64, Ordering::Relaxed);
                if tx.send(Job { seq, intended }).is_err() {
                    return;
                }
            }
        })
    };

    let timeout = Duration::from_secs(args.timeout);
    let stats = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.connections {
            let rx = rx.clone();
            let path = path.clone();
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                let mut stats = Stats::default();
                let mut conn: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
                loop {
                    let job = { rx.lock().await.recv().await };
                    let Some(job) = job else { break };
                    let deadline = job.intended + timeout;
                    let res = tokio::time::timeout_at(deadline.into(), async {
                        if conn.as_ref().is_none_or(|c| c.is_closed()) {
                            let tcp = tokio::net::TcpStream::connect(addr).await?;
                            tcp.set_nodelay(true)?;
                            let (send, c) =
                                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                            tokio::spawn(c);
                            conn = Some(send);
                        }
                        let send = conn.as_mut().expect("connected");
                        send.ready().await?;
                        let req = http::Request::get(path.as_str())
                            .header(http::header::HOST, host.as_str())
                            .body(Empty::<Bytes>::new())?;
                        let resp = send.send_request(req).await?;
                        let status = resp.status();
                        resp.into_body().collect().await?;
                        Ok::<_, anyhow::Error>(status)
                    })
                    .await;
                    let done = Instant::now();
                    let measured = job.seq >= warmup_n;
                    match res {
                        Ok(Ok(status)) => {
                            if measured {
                                if !status.is_success() {
                                    stats.non_2xx += 1;
                                }
                                stats
                                    .latencies_ns
                                    .push(done.duration_since(job.intended).as_nanos() as u64);
                            }
                        }
                        Ok(Err(_)) | Err(_) => {
                            conn = None;
                            if measured {
                                stats.errors += 1;
                            }
                        }
                    }
                }
                stats
            }));
        }
        let mut all = Stats::default();
        for t in tasks {
            let s = t.await.expect("connection task");
            all.latencies_ns.extend(s.latencies_ns);
            all.errors += s.errors;
            all.non_2xx += s.non_2xx;
        }
        all
    });
    pacer.join().expect("pacer thread");
    let wall = start.elapsed();

    let mut lat = stats.latencies_ns;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * (lat.len() as f64)).ceil() as usize;
        lat[idx.clamp(1, lat.len()) - 1] as f64 / 1e6
    };
    let measured_n = total_n - warmup_n;
    let ok = lat.len() as u64;
    let fields: Vec<(&str, String)> = vec![
        ("target", args.url.clone()),
        ("rate", args.rate.to_string()),
        ("connections", args.connections.to_string()),
        ("duration_s", args.duration.to_string()),
        ("sent", measured_n.to_string()),
        ("ok", ok.to_string()),
        ("non_2xx", stats.non_2xx.to_string()),
        ("errors", stats.errors.to_string()),
        ("p50_ms", format!("{:.3}", pct(50.0))),
        ("p90_ms", format!("{:.3}", pct(90.0))),
        ("p99_ms", format!("{:.3}", pct(99.0))),
        ("max_ms", format!("{:.3}", pct(100.0))),
        (
            "pacer_late_max_ms",
            format!("{:.3}", late_max_ns.load(Ordering::Relaxed) as f64 / 1e6),
        ),
        ("wall_s", format!("{:.2}", wall.as_secs_f64())),
    ];
    if args.json {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| {
                let val = v
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::String(v));
                (k.to_string(), val)
            })
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{}", line.join(" "));
    }
    if ok == 0 {
        bail!("no successful request");
    }
    Ok(())
}
