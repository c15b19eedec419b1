//! kuma-dp as a process: what its inbound accepts, certificate rotation under load, the
//! control plane going away, bad input, and the Dataplane lifecycle.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerie_e2e::{Dataplane, Process, bin, http, text, wait_for};
use base64::Engine;
use common::{KongAir, MTLS, PROPAGATION, TARGETED, call, wait_status};

/// The mesh CA certificate, read (as an admin on loopback) from the Secret the CP created.
fn mesh_ca(k: &KongAir) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let r =
        k.cp.get("/meshes/default/secrets/default.ca-builtin-cert-builtin");
    assert_eq!(r.status, 200, "{}", r.body);
    let pem = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"].as_str().unwrap())
        .unwrap();
    aerie_identity::load_cert_chain(std::str::from_utf8(&pem).unwrap()).unwrap()
}

/// Connects to `addr` with TLS (verifying the server as `expected` against `roots`), sends
/// one HTTP request, and returns what came back (Err = the connection failed).
fn tls_get(
    addr: &str,
    roots: &[rustls::pki_types::CertificateDer<'static>],
    expected: &str,
    client: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = aerie_identity::SpiffeServerVerifier::new(roots, expected.to_string())
        .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("mesh.invalid").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) if !out.is_empty() => Ok(text(&out)),
        Ok(_) => Err("closed without an answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn workload(
    ca: &aerie_identity::CertificateAuthority,
    sans: &[&str],
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let key = aerie_identity::WorkloadKey::generate().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let pem = ca
        .sign_workload(
            &key.csr_pem().unwrap(),
            &sans,
            Duration::from_secs(3600),
            std::time::SystemTime::now(),
        )
        .unwrap();
    (
        aerie_identity::load_cert_chain(&pem).unwrap(),
        key.private_key_der(),
    )
}

#[test]
fn inbound_refuses_unauthenticated_and_foreign_clients_and_presents_its_spiffe_id() {
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(TARGETED);
    wait_status("mTLS in force", &k.from_booking, 403);
    let inbound = k.checkin_inbound.clone();
    let roots = mesh_ca(&k);
    // Plaintext is refused in STRICT mode.
    let r = http("GET", &inbound, "/", None, &[]);
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.status != 200),
        "plaintext must not reach the app: {r:?}"
    );
    // TLS without a client certificate.
    let err = tls_get(&inbound, &roots, "spiffe://default/check-in-api-blu", None).unwrap_err();
    assert!(!err.is_empty());
    // A self-signed client certificate claiming flight-control's identity.
    let forged_ca =
        aerie_identity::CertificateAuthority::generate("default", Duration::from_secs(3600))
            .unwrap();
    let forged = workload(&forged_ca, &["spiffe://default/flight-control-blu"]);
    assert!(
        tls_get(
            &inbound,
            &roots,
            "spiffe://default/check-in-api-blu",
            Some(forged)
        )
        .is_err(),
        "a certificate from another CA named `default`"
    );
    // Another mesh's certificate.
    let other_ca =
        aerie_identity::CertificateAuthority::generate("other", Duration::from_secs(3600)).unwrap();
    let other = workload(&other_ca, &["spiffe://other/flight-control-blu"]);
    assert!(
        tls_get(
            &inbound,
            &roots,
            "spiffe://default/check-in-api-blu",
            Some(other)
        )
        .is_err(),
        "another mesh"
    );
    // The inbound presents spiffe://default/check-in-api-blu, chained to the mesh CA: the
    // handshake gets past server verification (and then fails on our missing client cert),
    // whereas expecting another identity fails on the server certificate.
    let err = tls_get(
        &inbound,
        &roots,
        "spiffe://default/flight-control-blu",
        None,
    )
    .unwrap_err();
    assert!(
        err.contains("spiffe://default/check-in-api-blu"),
        "the mismatch names what was presented: {err}"
    );
}

#[test]
fn certificate_rotation_under_load_fails_no_request() {
    let k = KongAir::start("http");
    // Certificates live 6s (+10s backdating): rotation every few seconds.
    k.apply("type: Mesh\nname: default\nmtls:\n  enabledBackend: builtin\n  backends:\n  - name: builtin\n    type: builtin\n    dpCert:\n      rotation:\n        expiration: 6s\n");
    k.apply(TARGETED);
    // mTLS in force (booking refused) and flight-control allowed: both proxies have certificates.
    wait_status("booking denied", &k.from_booking, 403);
    wait_status("flight-control allowed", &k.from_flight_control, 200);
    let regenerations = |name: &str| -> u64 {
        k.cp.dataplane_overview("default", name)
            .and_then(|o| o["dataplaneInsight"]["mTLS"]["certificateRegenerations"].as_u64())
            .unwrap_or(0)
    };
    let start = (
        regenerations("check-in-api-1"),
        regenerations("flight-control-1"),
    );
    assert!(
        start.0 >= 1 && start.1 >= 1,
        "both proxies hold a certificate: {start:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut ok, mut failed) = (0u32, Vec::new());
    while Instant::now() < deadline {
        match call(&k.from_flight_control) {
            200 => ok += 1,
            other => failed.push(other),
        }
        let now = (
            regenerations("check-in-api-1"),
            regenerations("flight-control-1"),
        );
        if now.0 >= start.0 + 2 && now.1 >= start.1 + 2 && ok > 200 {
            break;
        }
    }
    let now = (
        regenerations("check-in-api-1"),
        regenerations("flight-control-1"),
    );
    assert!(
        now.0 >= start.0 + 2 && now.1 >= start.1 + 2,
        "both sides rotated twice: {start:?} -> {now:?}"
    );
    assert!(
        failed.is_empty(),
        "{} requests failed during rotation ({ok} ok): {failed:?}",
        failed.len()
    );
}

#[test]
fn control_plane_down_traffic_keeps_flowing_and_proxies_reconnect() {
    let mut k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(TARGETED);
    wait_status("flight-control allowed", &k.from_flight_control, 200);
    wait_status("booking denied", &k.from_booking, 403);
    k.cp.kill9();
    for _ in 0..50 {
        assert_eq!(
            call(&k.from_flight_control),
            200,
            "allowed traffic keeps flowing without the CP"
        );
        assert_eq!(
            call(&k.from_booking),
            403,
            "and denied traffic stays denied"
        );
    }
    let ready = http("GET", &k.checkin.admin, "/ready", None, &[]).unwrap();
    assert!(
        ready.body.to_lowercase().contains("control plane"),
        "readiness says the CP is gone: {}",
        ready.body
    );
    k.cp.restart();
    wait_for("check-in proxy back online", PROPAGATION, || {
        k.cp.dataplane_overview("default", "check-in-api-1")
            .filter(|o| o["online"] == true)
    });
    // A change made after the restart reaches the proxies.
    k.kumactl.ok(&[
        "delete",
        "meshtrafficpermission",
        "allow-flight-control-to-check-in",
        "--mesh",
        "default",
    ]);
    wait_status(
        "flight-control denied after the policy is removed",
        &k.from_flight_control,
        403,
    );
}

#[test]
fn graceful_stop_removes_the_dataplane_and_a_crash_leaves_it_offline() {
    let mut k = KongAir::start("http");
    assert!(
        k.cp.dataplane_overview("default", "booking-1")
            .is_some_and(|o| o["online"] == true)
    );
    assert_eq!(
        k.booking.process.stop(),
        Some(0),
        "{}",
        k.booking.process.logs()
    );
    wait_for("booking-1 deregistered", PROPAGATION, || {
        k.cp.dataplane_overview("default", "booking-1")
            .is_none()
            .then_some(())
    });
    k.checkin.process.kill9();
    wait_for("check-in-api-1 offline", PROPAGATION, || {
        k.cp.dataplane_overview("default", "check-in-api-1")
            .filter(|o| o["online"] == false)
    });
    let table = k.kumactl.ok(&["inspect", "dataplanes"]);
    assert!(
        table.contains("Offline") && table.contains("Online"),
        "{table}"
    );
}

fn kuma_dp(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(bin("kuma-dp"))
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("KUMA_DATAPLANE_RUNTIME_TOKEN")
        .output()
        .unwrap();
    (out.status.success(), text(&out.stderr))
}

#[test]
fn bad_dataplane_files_and_tokens_are_refused_clearly() {
    let k = KongAir::start("http");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cp = k.cp.dp_address();
    let ca = k.cp.dp_ca_file();
    let ca = ca.to_str().unwrap();
    let good = "type: Dataplane\nmesh: default\nname: late-1\nnetworking:\n  address: 127.0.0.1\n  admin: {port: 0}\n  inbound:\n  - port: 1\n    servicePort: 2\n    tags: {kuma.io/service: late}\n";
    std::fs::write(d.join("good.yaml"), good).unwrap();
    std::fs::write(d.join("bad-yaml.yaml"), "type: Dataplane\nname: [x\n").unwrap();
    std::fs::write(d.join("invalid.yaml"), "type: Dataplane\nmesh: default\nname: x\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 70000\n").unwrap();
    std::fs::write(
        d.join("template.yaml"),
        good.replace("late-1", "{{ name }}"),
    )
    .unwrap();
    std::fs::write(d.join("garbage-token"), "not-a-jwt").unwrap();
    std::fs::write(
        d.join("other-name-token"),
        k.cp.dataplane_token("default", "someone-else"),
    )
    .unwrap();

    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "bad-yaml.yaml",
            "--dataplane-token-file",
            "garbage-token",
        ],
        d,
    );
    assert!(
        !ok && err.contains("invalid Dataplane") && err.contains("line"),
        "{err}"
    );
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "invalid.yaml",
            "--dataplane-token-file",
            "garbage-token",
        ],
        d,
    );
    assert!(
        !ok && err.contains("port must be in the range [1, 65535]"),
        "{err}"
    );
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "template.yaml",
            "--dataplane-token-file",
            "garbage-token",
        ],
        d,
    );
    assert!(
        !ok && err.contains("name"),
        "a missing template variable is named: {err}"
    );
    let (ok, err) = kuma_dp(
        &["--cp-address", &cp, "--ca-cert-file", ca, "-d", "good.yaml"],
        d,
    );
    assert!(!ok && err.contains("token is required"), "{err}");
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "good.yaml",
            "--dataplane-token-file",
            "garbage-token",
        ],
        d,
    );
    assert!(!ok && err.contains("invalid dataplane token"), "{err}");
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "good.yaml",
            "--dataplane-token-file",
            "other-name-token",
        ],
        d,
    );
    assert!(!ok && err.contains("someone-else"), "{err}");
    // Expired: a 1s token, used after it expired.
    let r = http(
        "POST",
        &k.cp.addrs.api(),
        "/tokens/dataplane",
        Some(r#"{"name":"late-1","mesh":"default","validFor":"1s"}"#),
        &[],
    )
    .unwrap();
    std::fs::write(d.join("short-token"), &r.body).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "good.yaml",
            "--dataplane-token-file",
            "short-token",
        ],
        d,
    );
    assert!(!ok && err.contains("expired"), "{err}");
    // Revoked: the token's id listed in the mesh's revocation secret.
    let revoked = k.cp.dataplane_token("default", "late-1");
    let payload = revoked.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let jti = claims["jti"].as_str().unwrap();
    let list = base64::engine::general_purpose::STANDARD.encode(format!("some-other-id,{jti}"));
    k.cp.apply_json(
        "/meshes/default/secrets/dataplane-token-revocations-default",
        &format!(r#"{{"type":"Secret","mesh":"default","name":"dataplane-token-revocations-default","data":"{list}"}}"#),
    );
    std::fs::write(d.join("revoked-token"), &revoked).unwrap();
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "good.yaml",
            "--dataplane-token-file",
            "revoked-token",
        ],
        d,
    );
    assert!(!ok && err.contains("revoked"), "{err}");
    // Tags: a token bound to another service.
    let r = http(
        "POST",
        &k.cp.addrs.api(),
        "/tokens/dataplane",
        Some(r#"{"name":"late-1","mesh":"default","tags":{"kuma.io/service":["billing"]}}"#),
        &[],
    )
    .unwrap();
    std::fs::write(d.join("tagged-token"), &r.body).unwrap();
    let (ok, err) = kuma_dp(
        &[
            "--cp-address",
            &cp,
            "--ca-cert-file",
            ca,
            "-d",
            "good.yaml",
            "--dataplane-token-file",
            "tagged-token",
        ],
        d,
    );
    assert!(!ok && err.contains("kuma.io/service"), "{err}");
    assert!(
        k.cp.dataplane_overview("default", "late-1").is_none(),
        "nothing registered"
    );
    // The wrong CA file: the control plane is not trusted.
    std::fs::write(
        d.join("wrong-ca.pem"),
        aerie_identity::CertificateAuthority::generate("x", Duration::from_secs(60))
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let token = k.cp.dataplane_token("default", "late-1");
    std::fs::write(d.join("token"), token).unwrap();
    let mut cmd = std::process::Command::new(bin("kuma-dp"));
    cmd.args([
        "run",
        "--cp-address",
        &cp,
        "--ca-cert-file",
        "wrong-ca.pem",
        "-d",
        "good.yaml",
        "--dataplane-token-file",
        "token",
    ])
    .current_dir(d);
    let mut p = Process::spawn("late-1", cmd);
    wait_for(
        "kuma-dp to report the untrusted control plane",
        PROPAGATION,
        || {
            let logs = p.logs();
            (logs.contains("certificate") || logs.contains("UnknownIssuer")).then_some(())
        },
    );
    assert!(
        k.cp.dataplane_overview("default", "late-1").is_none(),
        "an unverified CP gets nothing"
    );
    assert!(p.exited().is_none(), "it keeps retrying");
    let _ = Dataplane::start_with_token;
}

#[test]
fn changing_the_ca_backend_keeps_traffic_flowing() {
    let k = KongAir::start("http");
    let mesh_with = |backend: &str| {
        format!(
            "type: Mesh\nname: default\nmtls:\n  enabledBackend: {backend}\n  backends:\n  - name: {backend}\n    type: builtin\n"
        )
    };
    k.apply(&mesh_with("ca-1"));
    k.apply(TARGETED);
    wait_status("booking denied", &k.from_booking, 403);
    wait_status("flight-control allowed", &k.from_flight_control, 200);
    let issued_by = |name: &str| -> u64 {
        k.cp.dataplane_overview("default", name)
            .and_then(|o| o["dataplaneInsight"]["mTLS"]["certificateRegenerations"].as_u64())
            .unwrap_or(0)
    };
    let before = (issued_by("check-in-api-1"), issued_by("flight-control-1"));
    k.apply(&mesh_with("ca-2"));
    // Requests keep succeeding while the new CA is distributed and certificates re-issued.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut ok, mut failed) = (0u32, Vec::new());
    loop {
        match call(&k.from_flight_control) {
            200 => ok += 1,
            other => failed.push(other),
        }
        let now = (issued_by("check-in-api-1"), issued_by("flight-control-1"));
        if (now.0 > before.0 && now.1 > before.1 && ok > 100) || Instant::now() > deadline {
            break;
        }
    }
    let now = (issued_by("check-in-api-1"), issued_by("flight-control-1"));
    assert!(
        now.0 > before.0 && now.1 > before.1,
        "certificates re-issued from the new CA: {before:?} -> {now:?}"
    );
    assert!(
        failed.is_empty(),
        "{} requests failed during the CA change ({ok} ok): {failed:?}",
        failed.len()
    );
    // Both CAs are trusted, both kept as secrets; the new one signs.
    let secrets = k.cp.get("/meshes/default/secrets").json();
    let names: Vec<_> = secrets["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"default.ca-builtin-cert-ca-1")
            && names.contains(&"default.ca-builtin-cert-ca-2"),
        "{names:?}"
    );
    assert_eq!(call(&k.from_booking), 403);
}

#[test]
fn a_config_the_proxy_cannot_apply_is_nacked_and_reported() {
    let k = KongAir::start("http");
    // Occupy the address the next Dataplane's inbound wants, then start it: the proxy
    // cannot bind, rejects the config (NACK), and the control plane shows why.
    let ip = aerie_e2e::loopback_ip();
    let squatter = std::net::TcpListener::bind((ip.as_str(), 9000)).unwrap();
    let admin = aerie_e2e::free_port("127.0.0.1");
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: squeezed-1\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 1\n    tags:\n      kuma.io/service: squeezed\n"
    );
    let _dp = Dataplane::start(&k.cp, "squeezed-1", &yaml, admin);
    let nack = wait_for("the NACK to reach the control plane", PROPAGATION, || {
        let o = k.cp.dataplane_overview("default", "squeezed-1")?;
        o["dataplaneInsight"]["subscriptions"][0]["status"]["lastNack"]
            .as_str()
            .map(str::to_string)
    });
    assert!(nack.contains("9000"), "the NACK names the address: {nack}");
    drop(squatter);
}

#[test]
fn provided_ca_from_inline_strings() {
    let k = KongAir::start("http");
    let ca = aerie_identity::CertificateAuthority::generate("default", Duration::from_secs(86_400))
        .unwrap();
    let esc = |pem: &str| pem.replace('\n', "\\n");
    let mesh = format!(
        r#"{{"type":"Mesh","name":"default","mtls":{{"enabledBackend":"mine","backends":[{{"name":"mine","type":"provided","conf":{{"cert":{{"inlineString":"{}"}},"key":{{"inlineString":"{}"}}}}}}]}}}}"#,
        esc(ca.cert_pem()),
        esc(ca.key_pem())
    );
    k.cp.apply_json("/meshes/default", &mesh);
    k.apply(TARGETED);
    wait_status("booking denied", &k.from_booking, 403);
    wait_status("flight-control allowed", &k.from_flight_control, 200);
    // The inbound's certificate chains to the provided CA.
    let roots = vec![ca.cert_der().clone()];
    let err = tls_get(
        &k.checkin_inbound,
        &roots,
        "spiffe://default/flight-control-blu",
        None,
    )
    .unwrap_err();
    assert!(
        err.contains("spiffe://default/check-in-api-blu"),
        "verified against the provided CA: {err}"
    );
}

#[test]
fn the_leader_deletes_dataplanes_offline_for_the_cleanup_age() {
    let cp = aerie_e2e::ControlPlane::start_with(&[(
        "KUMA_RUNTIME_UNIVERSAL_DATAPLANE_CLEANUP_AGE",
        "2s",
    )]);
    let admin = aerie_e2e::free_port("127.0.0.1");
    let ip = aerie_e2e::loopback_ip();
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: gone-1\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 1\n    tags:\n      kuma.io/service: gone\n"
    );
    let mut dp = Dataplane::start(&cp, "gone-1", &yaml, admin);
    dp.wait_ready();
    // Online proxies are never cleaned up, however long they live.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert!(
            cp.dataplane_overview("default", "gone-1")
                .is_some_and(|o| o["online"] == true),
            "an online Dataplane stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    dp.process.kill9();
    wait_for("offline", PROPAGATION, || {
        cp.dataplane_overview("default", "gone-1")
            .filter(|o| o["online"] == false)
    });
    wait_for("deleted after 2s offline", PROPAGATION, || {
        cp.dataplane_overview("default", "gone-1")
            .is_none()
            .then_some(())
    });
}

/// Accepted inbound connections, from a proxy's `/stats/prometheus`.
fn inbound_connections(dp: &Dataplane) -> u64 {
    dp.stats()
        .lines()
        .filter(|l| l.starts_with("aerie_dp_connections_total{direction=\"inbound\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Sends `GET /check-in` on `conn` and reads one response; its status line, or why none came.
fn get_on(conn: &mut std::net::TcpStream) -> Result<String, String> {
    conn.write_all(b"GET /check-in HTTP/1.1\r\nHost: check-in-api\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let head = text(&buf);
        if let Some((head, body)) = head.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| format!("no content-length: {head}"))?;
            if body.len() >= len {
                return Ok(head.lines().next().unwrap_or_default().to_owned());
            }
        }
    }
}

#[test]
fn idle_keep_alive_connections_outlive_the_handshake_timeout() {
    // kuma-dp once closed every keep-alive connection idle for 10 s (its handshake timeout);
    // idle connections now last the idle timeout (1 h). Both hops are checked: the app's
    // connection to its sidecar, and the pooled mTLS connection between the sidecars.
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(TARGETED);
    // Both in force (booking denied) before the connections are made: a connection from
    // before mTLS is not kept once it is on.
    wait_status("mTLS and the policy in force", &k.from_booking, 403);
    wait_status("flight-control allowed", &k.from_flight_control, 200);
    let mut conn = std::net::TcpStream::connect(&k.from_flight_control).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(get_on(&mut conn).unwrap(), "HTTP/1.1 200 OK");
    let accepted = inbound_connections(&k.checkin);
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(
        get_on(&mut conn).as_deref(),
        Ok("HTTP/1.1 200 OK"),
        "the same connection serves after 11 s idle"
    );
    assert_eq!(
        inbound_connections(&k.checkin),
        accepted,
        "check-in-api's sidecar accepted no new connection: the pooled one was kept"
    );
}
