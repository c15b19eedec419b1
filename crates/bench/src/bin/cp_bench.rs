//! `aerie-cp-bench`: connects N synthetic proxies to a running kuma-cp with the real
//! protocol client (`aerie_xds::client::run`), then measures how long a
//! MeshTrafficPermission applied through the API takes to reach every proxy.
//!
//! The proxies open no listeners and carry no traffic: their sink only records when each
//! config and certificate was applied. Started by `bench/controlplane.sh`; never by tests.

// A benchmark tool run by hand: a panic aborts the measurement, as it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aerie_core::proxy_config::ProxyConfig;
use aerie_identity::WorkloadKey;
use aerie_xds::NodeInfo;
use aerie_xds::client::{self, ClientOptions, ProxySink};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(about = "Control-plane config propagation benchmark with N synthetic proxies")]
struct Args {
    /// The CP's API, `http://127.0.0.1:5681`.
    #[arg(long)]
    api: String,
    /// The DP server, `https://127.0.0.1:5678`.
    #[arg(long)]
    dp_address: String,
    /// The DP server's CA certificate (`<work dir>/tls/dp-server.crt`).
    #[arg(long)]
    ca_cert_file: std::path::PathBuf,
    /// Number of synthetic proxies.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    n: usize,
    /// kuma-cp's pid, to read its memory from /proc.
    #[arg(long)]
    cp_pid: Option<u32>,
    /// Proxies connecting at once (started but without config and certificate yet).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Parallel token requests.
    #[arg(long, default_value_t = 32)]
    token_parallelism: usize,
    /// Bound on the setup (tokens + connecting all proxies), seconds.
    #[arg(long, default_value_t = 900)]
    setup_timeout: u64,
    /// Bound on the propagation measurement, seconds.
    #[arg(long, default_value_t = 120)]
    propagation_timeout: u64,
    /// Quiet time (no config applied anywhere) required before T0, milliseconds.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// Mesh to use.
    #[arg(long, default_value = "default")]
    mesh: String,
    /// Create the mesh without Kuma's default policies (`skipCreatingInitialPolicies: ["*"]`;
    /// the control plane must not have created it already).
    #[arg(long)]
    skip_default_policies: bool,
}

/// What one proxy's sink saw.
#[derive(Default)]
struct Rec {
    /// Fingerprint of the inbound authorization of the last applied config.
    authz: AtomicU64,
    has_config: AtomicBool,
    has_identity: AtomicBool,
    configs_applied: AtomicU64,
    connects: AtomicU64,
    /// Set once: the first config applied after T0 whose authorization differs from the
    /// baseline captured at T0.
    propagated_after: OnceLock<Duration>,
    baseline: AtomicU64,
}

struct Shared {
    start: Instant,
    ready: AtomicUsize,
    /// Nanoseconds since `start` of the last config applied by any proxy.
    last_apply_ns: AtomicU64,
    t0: OnceLock<Instant>,
    propagated: AtomicUsize,
    failed: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

struct BenchSink {
    rec: Arc<Rec>,
    shared: Arc<Shared>,
}

fn authz_fingerprint(cfg: &ProxyConfig) -> u64 {
    let mut h = DefaultHasher::new();
    for i in &cfg.inbounds {
        serde_json::to_string(&i.authz)
            .unwrap_or_default()
            .hash(&mut h);
    }
    h.finish()
}

impl BenchSink {
    fn mark_ready(&self, other: &AtomicBool) {
        if other.load(Ordering::SeqCst) {
            self.shared.ready.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ProxySink for BenchSink {
    fn apply_config(&self, _version: &str, cfg: &ProxyConfig) -> Result<(), String> {
        let now = Instant::now();
        let fp = authz_fingerprint(cfg);
        self.rec.authz.store(fp, Ordering::SeqCst);
        self.rec.configs_applied.fetch_add(1, Ordering::Relaxed);
        self.shared.last_apply_ns.fetch_max(
            now.duration_since(self.shared.start).as_nanos() as u64,
            Ordering::Relaxed,
        );
        if let Some(t0) = self.shared.t0.get()
            && fp != self.rec.baseline.load(Ordering::SeqCst)
            && self
                .rec
                .propagated_after
                .set(now.saturating_duration_since(*t0))
                .is_ok()
        {
            self.shared.propagated.fetch_add(1, Ordering::SeqCst);
        }
        if !self.rec.has_config.swap(true, Ordering::SeqCst) {
            self.mark_ready(&self.rec.has_identity);
        }
        Ok(())
    }

    fn apply_identity(
        &self,
        chain_pem: &str,
        _key: &WorkloadKey,
        _trust_bundle_pem: &str,
    ) -> Result<(), String> {
        if !chain_pem.contains("BEGIN CERTIFICATE") {
            return Err("no certificate".into());
        }
        if !self.rec.has_identity.swap(true, Ordering::SeqCst) {
            self.mark_ready(&self.rec.has_config);
        }
        Ok(())
    }

    fn set_connected(&self, connected: bool) {
        if connected {
            self.rec.connects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn call(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    body: String,
) -> anyhow::Result<(u16, String)> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .context("API call timed out")??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

/// VmRSS and VmHWM of a process, in KiB.
fn mem_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    #[allow(unsafe_code)]
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    (lim.rlim_cur, lim.rlim_max)
}

fn dataplane_json(mesh: &str, i: usize) -> String {
    // 127.10.0.0 and up: never bound by anything; one address per proxy.
    let ip = format!(
        "127.{}.{}.{}",
        10 + i / (256 * 254),
        (i / 254) % 256,
        1 + i % 254
    );
    serde_json::json!({
        "type": "Dataplane",
        "mesh": mesh,
        "name": format!("bench-{i}"),
        "networking": {
            "address": ip,
            "inbound": [{
                "port": 9000,
                "servicePort": 8080,
                "tags": {"kuma.io/service": format!("svc-{}", i % 100), "kuma.io/protocol": "http"}
            }],
            "outbound": [{
                "port": 20000,
                "tags": {"kuma.io/service": format!("svc-{}", (i + 1) % 100)}
            }]
        }
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[idx.clamp(1, sorted.len()) - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let nofile = raise_nofile();
    eprintln!(
        "RLIMIT_NOFILE of aerie-cp-bench: {} (hard {})",
        nofile.0, nofile.1
    );
    if (nofile.0 as usize) < args.n + 256 {
        eprintln!(
            "WARNING: {} proxies need about {} file descriptors; this process may run out",
            args.n,
            args.n + 256
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args, nofile))
}

async fn run(args: Args, nofile: (u64, u64)) -> anyhow::Result<()> {
    let api = args.api.trim_end_matches('/').to_string();
    let ca_pem = std::fs::read_to_string(&args.ca_cert_file)
        .with_context(|| format!("reading {}", args.ca_cert_file.display()))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let cp_mem = || args.cp_pid.and_then(mem_kib);
    let mem_idle = cp_mem();

    // 1. mTLS on the mesh (before connecting, so every proxy gets a certificate).
    let mut mesh_body = serde_json::json!({
        "type": "Mesh", "name": args.mesh,
        "mtls": {"backends": [{"name": "builtin", "type": "builtin"}], "enabledBackend": "builtin"}
    });
    if args.skip_default_policies {
        mesh_body["skipCreatingInitialPolicies"] = serde_json::json!(["*"]);
    }
    let mesh_body = mesh_body.to_string();
    let (st, body) = call(
        &http,
        http::Method::PUT,
        &format!("{api}/meshes/{}", args.mesh),
        mesh_body,
    )
    .await?;
    if st != 200 && st != 201 {
        bail!("enabling mTLS: {st} {body}");
    }

    // 2. Tokens, fetched in parallel.
    let setup_deadline = Instant::now() + Duration::from_secs(args.setup_timeout);
    let t_tokens = Instant::now();
    let mut tokens: Vec<Option<String>> = vec![None; args.n];
    {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.token_parallelism.max(1) {
            let (http, api, mesh, next, n) = (
                http.clone(),
                api.clone(),
                args.mesh.clone(),
                next.clone(),
                args.n,
            );
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(got);
                    }
                    let body =
                        serde_json::json!({"name": format!("bench-{i}"), "mesh": mesh}).to_string();
                    let (st, tok) = call(
                        &http,
                        http::Method::POST,
                        &format!("{api}/tokens/dataplane"),
                        body,
                    )
                    .await?;
                    if st != 200 {
                        bail!("token for bench-{i}: {st} {tok}");
                    }
                    got.push((i, tok.trim().to_string()));
                }
            }));
        }
        for t in tasks {
            for (i, tok) in t.await?? {
                tokens[i] = Some(tok);
            }
        }
    }
    let tokens_took = t_tokens.elapsed();
    eprintln!("{} tokens in {:.1?}", args.n, tokens_took);

    // 3. Connect all proxies, at most `window` of them connecting at once.
    let shared = Arc::new(Shared {
        start: Instant::now(),
        ready: AtomicUsize::new(0),
        last_apply_ns: AtomicU64::new(0),
        t0: OnceLock::new(),
        propagated: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut recs = Vec::with_capacity(args.n);
    let t_connect = Instant::now();
    let mut setup_error: Option<String> = None;
    let mut last_report = Instant::now();
    for (i, token) in tokens.into_iter().enumerate() {
        loop {
            let ready = shared.ready.load(Ordering::SeqCst);
            let failed = shared.failed.load(Ordering::SeqCst);
            if i < ready + failed + args.window {
                break;
            }
            if Instant::now() > setup_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Instant::now() > setup_deadline {
            setup_error = Some(format!(
                "setup timeout ({} s) while starting proxy {i}",
                args.setup_timeout
            ));
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  started {i}, ready {}, failed {} ({:.0?}); CP {}",
                shared.ready.load(Ordering::SeqCst),
                shared.failed.load(Ordering::SeqCst),
                t_connect.elapsed(),
                cp_mem().map(|m| mib(m.0)).unwrap_or_default()
            );
        }
        let rec = Arc::new(Rec::default());
        recs.push(rec.clone());
        let sink: Arc<dyn ProxySink> = Arc::new(BenchSink {
            rec,
            shared: shared.clone(),
        });
        let opts = ClientOptions {
            cp_addresses: vec![args.dp_address.clone()],
            ca_cert_pem: Some(ca_pem.clone()),
            token: token.expect("token fetched"),
            node: NodeInfo {
                mesh: args.mesh.clone(),
                name: format!("bench-{i}"),
                dataplane_json: Some(dataplane_json(&args.mesh, i)),
                csr_pem: None,
                version: env!("CARGO_PKG_VERSION").to_string(),
                proxy_type: Default::default(),
            },
        };
        let (shared2, stop) = (shared.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = client::run(opts, sink, stop).await {
                shared2.failed.fetch_add(1, Ordering::SeqCst);
                let mut f = shared2.failures.lock().expect("lock");
                if f.len() < 5 {
                    f.push(format!("bench-{i}: {e}"));
                }
            }
        });
    }
    let started = recs.len();
    while setup_error.is_none()
        && shared.ready.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst) < started
    {
        if Instant::now() > setup_deadline {
            setup_error = Some(format!(
                "setup timeout ({} s): {} of {started} proxies ready",
                args.setup_timeout,
                shared.ready.load(Ordering::SeqCst)
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_took = t_connect.elapsed();
    let ready_n = shared.ready.load(Ordering::SeqCst);
    eprintln!(
        "{ready_n} of {} proxies have a config and a certificate after {:.1?}",
        args.n, connect_took
    );

    // 4. Wait until no config has been applied anywhere for `settle_ms`, then T0.
    let settle = Duration::from_millis(args.settle_ms);
    let settle_deadline = Instant::now() + Duration::from_secs(120);
    let mut settled = false;
    while Instant::now() < settle_deadline {
        let last = Duration::from_nanos(shared.last_apply_ns.load(Ordering::Relaxed));
        if shared.start.elapsed().saturating_sub(last) >= settle {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("T0: settled, applying the policy");
    let mem_before = cp_mem();
    let fds_before = args.cp_pid.and_then(fds);
    let configs_before: u64 = recs
        .iter()
        .map(|r| r.configs_applied.load(Ordering::Relaxed))
        .sum();
    for r in &recs {
        r.baseline
            .store(r.authz.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    let mtp = serde_json::json!({
        "type": "MeshTrafficPermission", "name": "bench-allow-all", "mesh": args.mesh,
        "spec": {"targetRef": {"kind": "Mesh"},
                 "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}]}
    })
    .to_string();
    let t0 = Instant::now();
    let _ = shared.t0.set(t0);
    let (st, body) = call(
        &http,
        http::Method::PUT,
        &format!(
            "{api}/meshes/{}/meshtrafficpermissions/bench-allow-all",
            args.mesh
        ),
        mtp,
    )
    .await?;
    let api_took = t0.elapsed();
    if st != 200 && st != 201 {
        bail!("applying the MeshTrafficPermission: {st} {body}");
    }
    let prop_deadline = t0 + Duration::from_secs(args.propagation_timeout);
    let target = ready_n;
    while shared.propagated.load(Ordering::SeqCst) < target && Instant::now() < prop_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_took = t0.elapsed();
    let propagated = shared.propagated.load(Ordering::SeqCst);
    // Let the CP settle a moment so "after" includes the round's memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mem_after = cp_mem();
    let own_mem = mem_kib(std::process::id());
    let mut times: Vec<Duration> = recs
        .iter()
        .filter_map(|r| r.propagated_after.get().copied())
        .collect();
    times.sort_unstable();
    let reconnects: u64 = recs
        .iter()
        .map(|r| r.connects.load(Ordering::Relaxed).saturating_sub(1))
        .sum();
    let configs_total: u64 = recs
        .iter()
        .map(|r| r.configs_applied.load(Ordering::Relaxed))
        .sum();
    let failed = shared.failed.load(Ordering::SeqCst);
    let failures = shared.failures.lock().expect("lock").clone();
    let _ = stop_tx.send(true);

    // 5. Report.
    let p99 = percentile(&times, 99.0);
    let max_rss = mem_after.map(|m| m.0.max(m.1));
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("| metric | value |");
    println!("|---|---|");
    println!("| proxies requested (N) | {} |", args.n);
    println!("| proxies with config + certificate | {ready_n} (failed for good: {failed}) |");
    println!(
        "| time to fetch N tokens | {:.1} s |",
        tokens_took.as_secs_f64()
    );
    println!(
        "| time to connect N proxies (window {}) | {:.1} s |",
        args.window,
        connect_took.as_secs_f64()
    );
    println!(
        "| quiet {} ms before T0 | {} |",
        args.settle_ms,
        if settled {
            "yes"
        } else {
            "NO (configs still changing)"
        }
    );
    println!(
        "| API PUT MeshTrafficPermission took | {:.0} ms |",
        api_took.as_secs_f64() * 1000.0
    );
    println!(
        "| proxies that applied the change | {propagated} of {ready_n} (in {:.2} s; bound {} s) |",
        all_took.as_secs_f64(),
        args.propagation_timeout
    );
    println!(
        "| propagation p50 / p90 / p99 / max | {} / {} / {} / {} |",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 90.0)),
        ms(p99),
        ms(percentile(&times, 100.0))
    );
    let memline = |m: Option<(u64, u64)>| {
        m.map(|(rss, hwm)| format!("{} (peak {})", mib(rss), mib(hwm)))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "| CP RSS idle (before connecting) | {} |",
        memline(mem_idle)
    );
    println!(
        "| CP RSS with N connected, before T0 | {} |",
        memline(mem_before)
    );
    println!("| CP RSS after the propagation | {} |", memline(mem_after));
    if let (Some((rss, _)), true) = (mem_before, ready_n > 0) {
        println!(
            "| CP RSS per connected proxy | {:.1} KiB |",
            rss.saturating_sub(mem_idle.map(|m| m.0).unwrap_or(0)) as f64 / ready_n as f64
        );
    }
    println!(
        "| CP open fds with N connected | {} |",
        fds_before
            .map(|f| f.to_string())
            .unwrap_or_else(|| "-".into())
    );
    println!("| configs applied (setup / total) | {configs_before} / {configs_total} |");
    println!("| stream reconnects during the run | {reconnects} |");
    println!(
        "| bench tool RSS / RLIMIT_NOFILE | {} / {} |",
        own_mem.map(|m| mib(m.0)).unwrap_or_default(),
        nofile.0
    );
    println!();
    println!("| target | result | verdict |");
    println!("|---|---|---|");
    let all_prop = propagated == args.n && ready_n == args.n;
    println!(
        "| p99 propagation <= 1 s at N = 10,000 (this run: N = {}) | {} | {} |",
        args.n,
        ms(p99),
        if args.n == 10_000 {
            verdict(all_prop && p99.is_some_and(|p| p <= Duration::from_secs(1))).to_string()
        } else {
            format!(
                "{} at N = {} (the target is stated for N = 10,000)",
                verdict(all_prop && p99.is_some_and(|p| p <= Duration::from_secs(1))),
                args.n
            )
        }
    );
    println!(
        "| CP RSS <= 1 GiB | {} | {} |",
        max_rss.map(mib).unwrap_or_else(|| "-".into()),
        verdict(max_rss.is_some_and(|m| m <= 1024 * 1024))
    );
    if let Some(e) = &setup_error {
        println!();
        println!("**Setup did not complete:** {e}");
    }
    if !failures.is_empty() {
        println!();
        println!("First client failures:");
        for f in failures {
            println!("- `{f}`");
        }
    }
    if propagated < ready_n {
        println!();
        println!(
            "**{} proxies did not apply the change within {} s.**",
            ready_n - propagated,
            args.propagation_timeout
        );
    }
    // Give the clients a moment to close their streams; the process exit closes the rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
