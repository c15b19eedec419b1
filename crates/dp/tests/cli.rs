//! `kuma-dp run --proxy-type ...` as a process: what it refuses and how it says so, and a
//! zone ingress that starts, answers on its admin port, closes what it cannot route yet and
//! stops on SIGTERM.
//!
//! Like the e2e tests, this runs the binary from the cargo target dir (or `AERIE_BIN_DIR`):
//! run `cargo build -p kuma-dp` (or `cargo build --bins`) first.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_testkit::free_port;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn kuma_dp() -> PathBuf {
    let dir = match std::env::var_os("AERIE_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .unwrap()
            .parent() // deps
            .and_then(Path::parent)
            .unwrap()
            .to_path_buf(),
    };
    let bin = dir.join("kuma-dp");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p kuma-dp` first",
        bin.display()
    );
    bin
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(kuma_dp())
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("KUMA_DATAPLANE_RUNTIME_TOKEN")
        .env_remove("KUMA_DATAPLANE_PROXY_TYPE")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DATAPLANE: &str = "type: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 10001\n    servicePort: 8080\n    tags: {kuma.io/service: web}\n";

fn zone_ingress(address: &str, port: u16, admin: u16) -> String {
    format!(
        "type: ZoneIngress\nname: ingress-1\nnetworking:\n  address: {address}\n  port: {port}\n  admin: {{port: {admin}}}\n"
    )
}

#[test]
fn ingress_refuses_a_dataplane_and_unknown_proxy_types() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("dp.yaml"), DATAPLANE).unwrap();
    std::fs::write(
        d.join("ingress.yaml"),
        zone_ingress("127.0.0.1", 10001, 9911),
    )
    .unwrap();
    std::fs::write(d.join("token"), "zone-token").unwrap();
    let common = [
        "--cp-address",
        "https://127.0.0.1:1",
        "--dataplane-token-file",
        "token",
    ];

    let out = run(
        &[&common[..], &["--proxy-type", "ingress", "-d", "dp.yaml"]].concat(),
        d,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "--proxy-type ingress needs a resource of type ZoneIngress, but this one is a Dataplane"
        ),
        "{err}"
    );

    let out = run(
        &[
            &common[..],
            &["--proxy-type", "egress", "-d", "ingress.yaml"],
        ]
        .concat(),
        d,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--proxy-type egress: ZoneEgress is not supported yet"),
        "{err}"
    );

    let out = run(&[&common[..], &["-d", "ingress.yaml"]].concat(), d);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the resource is a ZoneIngress; run a zone ingress with --proxy-type ingress"),
        "{err}"
    );

    let out = run(&["--proxy-type", "ingress", "-d", "ingress.yaml"], d);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a zone token is required"),
        "{}",
        stderr(&out)
    );
}

/// Kills the process if the test fails before it stopped on its own.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    aerie_testkit::wait_for(what, Duration::from_secs(20), f)
}

#[test]
fn an_ingress_starts_refuses_traffic_until_configured_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ip = "127.0.0.41";
    let (port, admin) = (free_port(ip), free_port("127.0.0.1"));
    std::fs::write(
        d.join("ingress.yaml"),
        zone_ingress("{{ address }}", port, admin),
    )
    .unwrap();
    // A control plane that is not there: the ingress keeps trying and serves meanwhile.
    let cp = format!("https://127.0.0.1:{}", free_port("127.0.0.1"));
    let child = Command::new(kuma_dp())
        .args(["run", "--proxy-type", "ingress", "-d", "ingress.yaml"])
        .args(["-v", &format!("address={ip}")])
        .args(["--cp-address", &cp, "--dataplane-token", "zone-token"])
        .current_dir(d)
        .env_remove("KUMA_DATAPLANE_PROXY_TYPE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = Proc(child);
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let ready = eventually("the admin port", || http_get(admin_addr, "/ready"));
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("no configuration"), "{ready}");
    let stats = http_get(admin_addr, "/stats/prometheus").unwrap();
    assert!(stats.contains("aerie_dp_ingress_routes 0"), "{stats}");

    // The ingress port accepts and closes at once: there are no routes yet.
    let mut conn = TcpStream::connect((ip, port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));

    let pid = proc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = eventually("kuma-dp to stop", || proc.0.try_wait().unwrap());
    let mut logs = String::new();
    if let Some(mut e) = proc.0.stderr.take() {
        let _ = e.read_to_string(&mut logs);
    }
    assert!(status.success(), "exit {status}:\n{logs}");
    assert!(logs.contains("zone ingress"), "{logs}");
}
