//! The end-to-end harness: starts the real `kuma-cp` and runs the real `kumactl`, each test
//! with its own work dir, `$HOME` (so `~/.kumactl/config` is private to the test), loopback
//! address and free ports; everything it starts is killed when the handle drops.
//!
//! Binaries are taken from the cargo target dir next to the test executable, so run
//! `cargo build --bins` before `cargo test` (the README's test command does).

// A test harness: a panic here is a failed test, which is what unwrap/expect are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use aerie_testkit::{free_port, loopback_ip, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How long a process gets to become ready before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding the built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AERIE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for name in ["kuma-cp", "kumactl", "kuma-dp", "demo-app"] {
        assert!(
            dir.join(name).exists(),
            "{} not found in {}: run `cargo build --bins` first",
            name,
            dir.display()
        );
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Raises this (test) process's open-files soft limit to its hard limit; returns the limit.
pub fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit only read or write the struct passed, which outlives the calls.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    /// Response headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// Every value of header `name` (lowercase), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP request over a fresh connection (optionally from a given local address).
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        body,
        headers,
    })
}

/// How a [`raw_exchange`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The peer closed the connection (EOF).
    Closed,
    /// The peer reset the connection.
    Reset,
    /// Nothing arrived for the read timeout; the connection was still open.
    Quiet,
}

/// The bytes a [`raw_exchange`] got back, how it ended and when (from the first write).
#[derive(Debug)]
pub struct RawExchange {
    pub bytes: Vec<u8>,
    pub ended: Ended,
    pub took: Duration,
}

impl RawExchange {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The response's status code, if a status line arrived.
    pub fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.strip_prefix("HTTP/1.1 ")?;
        line.get(..3)?.parse().ok()
    }

    /// The response body (de-chunked when chunked), as far as it arrived.
    pub fn body(&self) -> String {
        let text = self.text();
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return String::new();
        };
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_owned()
        }
    }

    /// A chunked body's last chunk arrived (the response was complete).
    pub fn chunked_complete(&self) -> bool {
        self.bytes.ends_with(b"\r\n0\r\n\r\n")
    }
}

/// A client that misbehaves on purpose: connects to `addr`, writes `parts` one after the
/// other with `pause` between them (a slow client), then reads until the peer closes or
/// resets the connection, or nothing arrives for `quiet`.
pub fn raw_exchange(
    addr: &str,
    parts: &[&[u8]],
    pause: Duration,
    quiet: Duration,
) -> std::io::Result<RawExchange> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    s.set_read_timeout(Some(quiet))?;
    let start = Instant::now();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        s.write_all(part)?;
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ended::Closed,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ended::Reset,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break Ended::Quiet;
            }
            Err(e) => return Err(e),
        }
    };
    let took = start.elapsed();
    // `Quiet` waited `quiet` past the last byte: report when the last byte came instead.
    let took = if ended == Ended::Quiet {
        took.saturating_sub(quiet)
    } else {
        took
    };
    Ok(RawExchange { bytes, ended, took })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Ports and addresses of one control plane.
#[derive(Debug, Clone)]
pub struct CpAddrs {
    pub ip: String,
    pub http: u16,
    pub https: u16,
    pub diagnostics: u16,
    pub dp_server: u16,
    /// MADS and Prometheus HTTP SD (`KUMA_MONITORING_ASSIGNMENT_SERVER_PORT`).
    pub mads: u16,
}

impl CpAddrs {
    pub fn new(ip: &str) -> Self {
        Self {
            ip: ip.into(),
            http: free_port(ip),
            https: free_port(ip),
            diagnostics: free_port("127.0.0.1"),
            dp_server: free_port(ip),
            mads: free_port("127.0.0.1"),
        }
    }

    pub fn api(&self) -> String {
        format!("{}:{}", self.ip, self.http)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api())
    }
}

/// A running `kuma-cp`, killed on drop.
pub struct ControlPlane {
    pub addrs: CpAddrs,
    pub work_dir: PathBuf,
    pub log: PathBuf,
    extra_env: Vec<(String, String)>,
    /// The open-files soft limit the process starts with (None: inherited).
    nofile: Option<libc::rlim_t>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts a control plane with a fresh work dir and waits until it is ready.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let mut cp = Self::unstarted(env, None);
        cp.spawn();
        cp.wait_ready();
        cp
    }

    /// Starts a control plane whose open-files soft limit starts at `nofile` (as a shell's
    /// `ulimit -Sn` would set it) and waits until it is ready.
    pub fn start_with_nofile(env: &[(&str, &str)], nofile: libc::rlim_t) -> Self {
        let mut cp = Self::unstarted(env, Some(nofile));
        cp.spawn();
        cp.wait_ready();
        cp
    }

    /// Starts a control plane without waiting for it to become ready.
    pub fn start_unready(env: &[(&str, &str)]) -> Self {
        let mut cp = Self::unstarted(env, None);
        cp.spawn();
        cp
    }

    fn unstarted(env: &[(&str, &str)], nofile: Option<libc::rlim_t>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        ControlPlane {
            addrs: CpAddrs::new(&loopback_ip()),
            work_dir: tmp.path().join("work"),
            log: tmp.path().join("kuma-cp.log"),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile,
            child: None,
            _tmp: Some(tmp),
        }
    }

    /// The command that starts this control plane (also used by tests expecting failure).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("kuma-cp"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.work_dir.parent().expect("tmp"))
            .env("KUMA_GENERAL_WORK_DIR", &self.work_dir)
            .env("KUMA_API_SERVER_HTTP_INTERFACE", &self.addrs.ip)
            .env("KUMA_API_SERVER_HTTP_PORT", self.addrs.http.to_string())
            .env("KUMA_API_SERVER_HTTPS_INTERFACE", &self.addrs.ip)
            .env("KUMA_API_SERVER_HTTPS_PORT", self.addrs.https.to_string())
            .env(
                "KUMA_DIAGNOSTICS_SERVER_PORT",
                self.addrs.diagnostics.to_string(),
            )
            .env("KUMA_DP_SERVER_PORT", self.addrs.dp_server.to_string())
            .env(
                "KUMA_MONITORING_ASSIGNMENT_SERVER_PORT",
                self.addrs.mads.to_string(),
            );
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = self.command();
        if let Some(soft) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only async-signal-safe calls (get/setrlimit).
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    let mut lim = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    lim.rlim_cur = soft.min(lim.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn kuma-cp");
        self.child = Some(child);
    }

    pub fn wait_ready(&mut self) {
        let diag = format!("127.0.0.1:{}", self.addrs.diagnostics);
        let api = self.addrs.api();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("kuma-cp exited early ({status}):\n{}", self.logs());
            }
            let ready = http("GET", &diag, "/ready", None, &[]).is_ok_and(|r| r.status == 200)
                && http("GET", &api, "/", None, &[]).is_ok_and(|r| r.status == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kuma-cp not ready in {READY_TIMEOUT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "kuma-cp did not stop within 20s of SIGTERM:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same work dir and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready();
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http("GET", &self.addrs.api(), path, None, &[]).expect("GET")
    }

    pub fn put(&self, path: &str, body: &str) -> HttpResponse {
        http("PUT", &self.addrs.api(), path, Some(body), &[]).expect("PUT")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private `$HOME` for kumactl, so its config file belongs to one test.
pub struct Kumactl {
    home: tempfile::TempDir,
}

impl Default for Kumactl {
    fn default() -> Self {
        Self::new()
    }
}

impl Kumactl {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A kumactl whose active control plane is `cp` (added and switched to, as a user would).
    pub fn for_cp(cp: &ControlPlane) -> Self {
        let k = Self::new();
        k.ok(&[
            "config",
            "control-planes",
            "add",
            "--name",
            "test-cp",
            "--address",
            &cp.addrs.url(),
        ]);
        k
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("kumactl"));
        cmd.env_clear().env("HOME", self.home.path()).env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kumactl")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kumactl {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kumactl {args:?} should have failed:\nstdout: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// Runs a shell line (the seed's `echo '...' | kumactl apply -f -`) with kumactl on PATH.
    pub fn sh(&self, line: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(line)
            .env_clear()
            .env("HOME", self.home.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .output()
            .expect("run sh")
    }

    pub fn sh_ok(&self, line: &str) -> String {
        let out = self.sh(line);
        assert!(
            out.status.success(),
            "`{line}` failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A network namespace joined to the host by a veth pair: a second "host" on this machine,
/// so a client can reach the control plane from a non-loopback address.
/// `None` (with the reason) where namespaces cannot be made (not root, no `ip`).
pub struct NetNs {
    pub name: String,
    /// The host side's address (where servers listen).
    pub host_ip: String,
    /// The namespace side's address (where the client comes from).
    pub ns_ip: String,
}

impl NetNs {
    pub fn create() -> Result<NetNs, String> {
        static SEQ: AtomicU8 = AtomicU8::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 200) as u8;
        let name = format!("aerie-{}-{seq}", std::process::id());
        let (veth_host, veth_ns) = (format!("ae{id}h{seq}"), format!("ae{id}n{seq}"));
        // A /30 per namespace inside 10.251.0.0/16, private to this machine.
        let (a, b) = (id, seq.wrapping_mul(4));
        let host_ip = format!("10.251.{a}.{}", b + 1);
        let ns_ip = format!("10.251.{a}.{}", b + 2);
        let ns = NetNs {
            name: name.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                veth_host.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                veth_ns.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                veth_ns.clone(),
                "netns".into(),
                name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{host_ip}/30"),
                "dev".into(),
                veth_host.clone(),
            ],
            vec!["link".into(), "set".into(), veth_host.clone(), "up".into()],
            vec![
                "-n".into(),
                name.clone(),
                "addr".into(),
                "add".into(),
                format!("{ns_ip}/30"),
                "dev".into(),
                veth_ns.clone(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                veth_ns.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                name.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for args in steps {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(|e| format!("cannot run `ip`: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    text(&out.stderr).trim()
                ));
            }
        }
        Ok(ns)
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host's peer.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Tells the person running the tests that a test was skipped, and why. Written straight to
/// the process's stderr so the test harness's output capture does not swallow it.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Any child process the harness started (apps, proxies), killed on drop.
pub struct Process {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Process {
    pub fn spawn(name: &str, mut cmd: Command) -> Process {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Process {
            name: name.into(),
            log,
            child: Some(child),
            _tmp: tmp,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for the process to exit by itself (within `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let name = self.name.clone();
        let st = wait_for(&format!("{name} to exit"), timeout, || self.exited());
        self.child = None;
        st
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM)
        };
        let st = self.wait_exit(Duration::from_secs(30));
        st.code()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts the demo app (HTTP, or TCP echo) and waits until it accepts connections.
pub fn start_app(name: &str, addr: &str, tcp_echo: bool) -> Process {
    start_app_with(name, addr, if tcp_echo { &["--tcp-echo"] } else { &[] })
}

/// [`start_app`] with more arguments (`--tcp-echo`, `--fail-status CODE`).
pub fn start_app_with(name: &str, addr: &str, args: &[&str]) -> Process {
    let mut cmd = Command::new(bin("demo-app"));
    cmd.args(["--name", name, "--listen", addr]);
    cmd.args(args);
    let mut p = Process::spawn(name, cmd);
    let sock: SocketAddr = addr.parse().expect("app address");
    wait_for(&format!("app {name} on {addr}"), READY_TIMEOUT, || {
        if let Some(st) = p.exited() {
            panic!("app {name} exited ({st}): {}", p.logs());
        }
        TcpStream::connect_timeout(&sock, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    });
    p
}

impl ControlPlane {
    /// A dataplane token from the API (as `kumactl generate dataplane-token` gets it).
    pub fn dataplane_token(&self, mesh: &str, name: &str) -> String {
        let body = format!(r#"{{"name":"{name}","mesh":"{mesh}"}}"#);
        let r = http(
            "POST",
            &self.addrs.api(),
            "/tokens/dataplane",
            Some(&body),
            &[],
        )
        .expect("token");
        assert_eq!(r.status, 200, "token: {}", r.body);
        r.body
    }

    /// The DP server's generated certificate, for `kuma-dp --ca-cert-file`.
    pub fn dp_ca_file(&self) -> PathBuf {
        self.work_dir.join("tls/dp-server.crt")
    }

    pub fn dp_address(&self) -> String {
        format!("https://127.0.0.1:{}", self.addrs.dp_server)
    }

    /// The overview (`dataplanes+insights`) of one Dataplane.
    pub fn dataplane_overview(&self, mesh: &str, name: &str) -> Option<serde_json::Value> {
        let r = self.get(&format!("/meshes/{mesh}/dataplanes+insights/{name}"));
        (r.status == 200).then(|| r.json())
    }

    /// Applies one Universal YAML/JSON document through the API.
    pub fn apply_json(&self, path: &str, json: &str) {
        let r = self.put(path, json);
        assert!(
            r.status == 200 || r.status == 201,
            "PUT {path}: {} {}",
            r.status,
            r.body
        );
    }
}

/// A running `kuma-dp` with its files.
pub struct Dataplane {
    pub name: String,
    pub admin: String,
    pub process: Process,
    pub files: tempfile::TempDir,
}

impl Dataplane {
    /// Writes the Dataplane YAML and token, then starts `kuma-dp run` against `cp`.
    pub fn start(cp: &ControlPlane, name: &str, yaml: &str, admin_port: u16) -> Dataplane {
        Self::start_with_args(cp, name, yaml, admin_port, &[])
    }

    /// [`Dataplane::start`] with more `kuma-dp run` arguments (`--concurrency 1`).
    pub fn start_with_args(
        cp: &ControlPlane,
        name: &str,
        yaml: &str,
        admin_port: u16,
        args: &[&str],
    ) -> Dataplane {
        let token = cp.dataplane_token("default", name);
        Self::launch(
            &cp.dp_address(),
            &cp.dp_ca_file(),
            name,
            yaml,
            admin_port,
            &token,
            args,
        )
    }

    pub fn start_with_token(
        cp: &ControlPlane,
        name: &str,
        yaml: &str,
        admin_port: u16,
        token: &str,
    ) -> Dataplane {
        Self::start_against(
            &cp.dp_address(),
            &cp.dp_ca_file(),
            name,
            yaml,
            admin_port,
            token,
        )
    }

    /// Starts `kuma-dp` against any control-plane address list (`--cp-address a,b`) and CA file.
    pub fn start_against(
        cp_address: &str,
        ca_file: &Path,
        name: &str,
        yaml: &str,
        admin_port: u16,
        token: &str,
    ) -> Dataplane {
        Self::launch(cp_address, ca_file, name, yaml, admin_port, token, &[])
    }

    fn launch(
        cp_address: &str,
        ca_file: &Path,
        name: &str,
        yaml: &str,
        admin_port: u16,
        token: &str,
        args: &[&str],
    ) -> Dataplane {
        let files = tempfile::tempdir().expect("tempdir");
        let dp_file = files.path().join("dataplane.yaml");
        let token_file = files.path().join("token");
        std::fs::write(&dp_file, yaml).expect("write dataplane");
        std::fs::write(&token_file, token).expect("write token");
        let mut cmd = Command::new(bin("kuma-dp"));
        cmd.arg("run")
            .arg("--cp-address")
            .arg(cp_address)
            .arg("--ca-cert-file")
            .arg(ca_file)
            .arg("--dataplane-file")
            .arg(&dp_file)
            .arg("--dataplane-token-file")
            .arg(&token_file)
            .args(args)
            .env_remove("KUMA_DATAPLANE_RUNTIME_TOKEN");
        let process = Process::spawn(name, cmd);
        Dataplane {
            name: name.into(),
            admin: format!("127.0.0.1:{admin_port}"),
            process,
            files,
        }
    }

    /// Waits until the proxy's admin `/ready` says 200 (config, and identity when mTLS is on).
    pub fn wait_ready(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(st) = self.process.exited() {
                panic!("kuma-dp {name} exited ({st}):\n{}", self.process.logs());
            }
            if http("GET", &admin, "/ready", None, &[]).is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kuma-dp {name} not ready:\n{}",
                self.process.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stats(&self) -> String {
        http("GET", &self.admin, "/stats/prometheus", None, &[])
            .map(|r| r.body)
            .unwrap_or_default()
    }
}

/// A TCP relay on loopback that can be cut and restored: stands in for a database (or any
/// server) becoming unreachable and coming back, without touching the real one.
pub struct Relay {
    pub port: u16,
    target: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    up: bool,
    generation: u64,
    conns: Vec<TcpStream>,
}

impl Relay {
    /// A relay to `target`, initially down (nothing listens on its port).
    pub fn new(target: &str) -> Relay {
        let port = free_port("127.0.0.1");
        Relay {
            port,
            target: target.parse().expect("relay target"),
            state: Default::default(),
        }
    }

    /// Starts accepting and forwarding.
    pub fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("relay bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let generation = {
            let mut st = self.state.lock().expect("relay state");
            st.up = true;
            st.generation += 1;
            st.generation
        };
        let (state, target) = (self.state.clone(), self.target);
        std::thread::spawn(move || {
            loop {
                if state
                    .lock()
                    .map(|s| !s.up || s.generation != generation)
                    .unwrap_or(true)
                {
                    return; // dropping the listener closes the port
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        if let Ok(mut st) = state.lock() {
                            for s in [&client, &server] {
                                if let Ok(c) = s.try_clone() {
                                    st.conns.push(c);
                                }
                            }
                        }
                        for (mut from, mut to) in [
                            (client.try_clone(), server.try_clone()),
                            (server.try_clone(), client.try_clone()),
                        ]
                        .into_iter()
                        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                        {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// Cuts every connection and stops listening.
    pub fn down(&self) {
        let conns = {
            let mut st = self.state.lock().expect("relay state");
            st.up = false;
            std::mem::take(&mut st.conns)
        };
        for c in conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // Wait until the port is really closed.
        wait_for("relay port closed", Duration::from_secs(5), || {
            TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.lock() {
            st.up = false;
            for c in std::mem::take(&mut st.conns) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
