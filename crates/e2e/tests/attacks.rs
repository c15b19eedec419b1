//! What a workload's token holder tries, through the real binaries: forging the identity the
//! application hears, taking over another proxy's Dataplane, keeping a connection a policy
//! revoked, freezing other proxies' configs with a bad address, declaring loopback from
//! elsewhere, and reading the keys the control plane generated. Each test reproduces the
//! attack and checks it fails.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aerie_e2e::{
    ControlPlane, Dataplane, NetNs, Process, bin, free_port, http, loopback_ip, start_app, wait_for,
};
use common::{ALLOW_ALL, DENY_ALL, KongAir, MTLS, PROPAGATION, TARGETED, call, wait_status};

/// The headers check-in-api's application received for one request through `outbound`.
fn headers_seen(outbound: &str, sent: &[(&str, &str)]) -> serde_json::Value {
    let r = http("GET", outbound, "/headers", None, sent).expect("a call through the sidecar");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_forged_client_cert_header_never_reaches_the_app() {
    let k = KongAir::start("http");
    let forged = "By=spiffe://default/check-in-api-blu;URI=spiffe://default/admin";
    // mTLS off: no identity to describe, and the caller's header is dropped anyway.
    let seen = headers_seen(
        &k.from_flight_control,
        &[("x-forwarded-client-cert", forged)],
    );
    assert!(seen.get("x-forwarded-client-cert").is_none(), "{seen}");

    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    wait_for("mTLS in force", PROPAGATION, || {
        headers_seen(&k.from_flight_control, &[])
            .get("x-forwarded-client-cert")
            .map(|_| ())
    });
    let seen = headers_seen(
        &k.from_flight_control,
        &[("x-forwarded-client-cert", forged)],
    );
    let xfcc = seen["x-forwarded-client-cert"].as_str().unwrap_or_default();
    let parts: Vec<&str> = xfcc.split(';').collect();
    assert_eq!(parts.len(), 3, "{xfcc}");
    assert_eq!(parts[0], "By=spiffe://default/check-in-api-blu", "{xfcc}");
    let hash = parts[1].strip_prefix("Hash=").unwrap_or_default();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{xfcc}"
    );
    assert_eq!(
        parts[2], "URI=spiffe://default/flight-control-blu",
        "{xfcc}"
    );
    // Only one value: the forged one is gone, not appended.
    assert!(!xfcc.contains("admin"), "{xfcc}");
    // Another caller is described as itself.
    let seen = headers_seen(&k.from_booking, &[("X-Forwarded-Client-Cert", forged)]);
    let xfcc = seen["x-forwarded-client-cert"].as_str().unwrap_or_default();
    assert!(
        xfcc.ends_with(";URI=spiffe://default/booking-blu"),
        "{xfcc}"
    );
}

/// A dataplane token bound to tags only (no name), as `kumactl generate dataplane-token --tag`
/// makes it.
fn tag_token(k: &KongAir, service: &str) -> String {
    let body = format!(r#"{{"mesh":"default","tags":{{"kuma.io/service":["{service}"]}}}}"#);
    let r = http(
        "POST",
        &k.cp.addrs.api(),
        "/tokens/dataplane",
        Some(&body),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn attacker(k: &KongAir, name: &str, service: &str, token: &str) -> Dataplane {
    let admin = free_port("127.0.0.1");
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n",
        loopback_ip(),
        free_port("127.0.0.1"),
    );
    Dataplane::start_with_token(&k.cp, name, &yaml, admin, token)
}

/// The check-in-api proxy's session as the control plane reports it.
fn checkin_session(k: &KongAir) -> (String, String) {
    let o =
        k.cp.dataplane_overview("default", "check-in-api-1")
            .expect("overview");
    let sub = &o["dataplaneInsight"]["subscriptions"][0];
    (
        sub["connectTime"].as_str().unwrap_or_default().to_string(),
        o["dataplane"]["networking"]["inbound"][0]["tags"]["kuma.io/service"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn a_tag_bound_token_cannot_take_over_another_proxys_dataplane() {
    let mut k = KongAir::start("http");
    let before = checkin_session(&k);
    assert_eq!(before.1, "check-in-api-blu");

    // Another service's token, under check-in-api's name: it would change its identity.
    let evil = attacker(&k, "check-in-api-1", "evil", &tag_token(&k, "evil"));
    wait_for("the identity change is refused", PROPAGATION, || {
        evil.process
            .logs()
            .contains("cannot change a Dataplane's identity")
            .then_some(())
    });
    // The same service's token, under a live proxy's name: it would steal the session.
    let thief = attacker(
        &k,
        "check-in-api-1",
        "check-in-api-blu",
        &tag_token(&k, "check-in-api-blu"),
    );
    wait_for("the takeover is refused", PROPAGATION, || {
        thief
            .process
            .logs()
            .contains("cannot take over a live session")
            .then_some(())
    });
    // Both keep being refused (they retry); the real proxy was never disturbed.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(
            checkin_session(&k),
            before,
            "the real proxy's session changed"
        );
        assert_eq!(call(&k.from_flight_control), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let refusals = thief
        .process
        .logs()
        .matches("cannot take over a live session")
        .count();
    assert!(
        refusals >= 2,
        "the thief keeps retrying:\n{}",
        thief.process.logs()
    );
    drop((evil, thief));

    // Once the real proxy is gone (offline, Dataplane kept), its own service's token may
    // register under its name again: a restart on another host, for instance.
    k.checkin.process.kill9();
    let mut again = attacker(
        &k,
        "check-in-api-1",
        "check-in-api-blu",
        &tag_token(&k, "check-in-api-blu"),
    );
    again.wait_ready();
}

#[test]
fn an_admins_identity_change_reaches_the_proxys_certificate_at_once() {
    let k = KongAir::start("http");
    k.apply(MTLS);
    k.apply(TARGETED);
    wait_status("booking is denied", &k.from_booking, 403);
    assert_eq!(call(&k.from_flight_control), 200);

    // An admin turns booking-1 into flight-control-blu (the identity TARGETED allows).
    let path = "/meshes/default/dataplanes/booking-1";
    let mut dp = k.cp.get(path).json();
    dp["networking"]["inbound"][0]["tags"]["kuma.io/service"] = "flight-control-blu".into();
    for key in ["creationTime", "modificationTime"] {
        dp.as_object_mut().unwrap().remove(key);
    }
    let r = k.cp.put(path, &dp.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    // Its certificate follows within seconds, not at the next rotation.
    wait_status(
        "booking now calls as flight-control-blu",
        &k.from_booking,
        200,
    );
    let seen = headers_seen(&k.from_booking, &[]);
    let xfcc = seen["x-forwarded-client-cert"].as_str().unwrap_or_default();
    assert!(
        xfcc.ends_with(";URI=spiffe://default/flight-control-blu"),
        "{xfcc}"
    );
}

/// Sends `msg` on `s` and reads it back (the TCP echo app); `false` once the connection is
/// closed.
fn echo(s: &mut std::net::TcpStream, msg: &[u8]) -> bool {
    if s.write_all(msg).is_err() {
        return false;
    }
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).is_ok() && buf == msg
}

#[test]
fn revoking_a_permission_closes_open_tcp_connections() {
    let k = KongAir::start("tcp");
    k.apply(MTLS);
    k.apply(ALLOW_ALL);
    let connect = || {
        let mut s = std::net::TcpStream::connect(&k.from_flight_control).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        echo(&mut s, b"hello").then_some(s)
    };
    // Both proxies hold their certificates and check-in-api's inbound is STRICT.
    wait_for("mTLS in force", PROPAGATION, || {
        let dump = |admin: &str| {
            http("GET", admin, "/config_dump", None, &[])
                .ok()
                .map(|r| r.json())
        };
        let checkin = dump(&k.checkin.admin)?;
        let caller = dump(&k.flight_control.admin)?;
        (checkin["config"]["mtls"] == "strict"
            && checkin["identity"].is_object()
            && caller["identity"].is_object())
        .then_some(())
    });
    let mut open = wait_for("a TCP connection through mTLS", PROPAGATION, connect);
    let mut other = connect().expect("a second connection");

    // Revoke: deny-all, then remove allow-all. New connections are refused...
    k.apply(DENY_ALL);
    assert!(echo(&mut open, b"still allowed"));
    k.kumactl.ok(&[
        "delete",
        "meshtrafficpermission",
        "allow-all",
        "--mesh",
        "default",
    ]);
    wait_for("new connections are refused", PROPAGATION, || {
        connect().is_none().then_some(())
    });
    // ...and the ones already open are closed, not left flowing.
    let deadline = Instant::now() + PROPAGATION;
    while echo(&mut open, b"ping") || echo(&mut other, b"ping") {
        assert!(
            Instant::now() < deadline,
            "the open connections were not closed:\n{}",
            k.checkin.process.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dataplane_whose_address_cannot_be_used_freezes_no_other_proxy() {
    let cp = ControlPlane::start_with(&[("KUMA_GENERAL_DNS_CACHE_TTL", "1s")]);
    let app_port = free_port("127.0.0.1");
    let _app = start_app("api", &format!("127.0.0.1:{app_port}"), false);
    let yaml = |name: &str, service: &str, address: &str, admin: u16, outbound: Option<u16>| {
        let mut y = format!(
            "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {address}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app_port}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n"
        );
        if let Some(port) = outbound {
            y.push_str(&format!(
                "  outbound:\n  - port: {port}\n    tags:\n      kuma.io/service: api\n"
            ));
        }
        y
    };
    let a1 = free_port("127.0.0.1");
    let mut good = Dataplane::start(
        &cp,
        "api-1",
        &yaml("api-1", "api", &loopback_ip(), a1, None),
        a1,
    );
    good.wait_ready();
    // A second instance of `api` whose address is a name that does not resolve: its proxy
    // connects (its own inbound cannot bind, which is its own problem).
    let a2 = free_port("127.0.0.1");
    let _bad = Dataplane::start(
        &cp,
        "api-2",
        &yaml("api-2", "api", "does-not-resolve.invalid", a2, None),
        a2,
    );
    wait_for("the bad address is reported", PROPAGATION, || {
        let o = cp.dataplane_overview("default", "api-2")?;
        let problems = o["addressProblems"].to_string();
        (o["online"] == true && problems.contains("does-not-resolve.invalid")).then_some(())
    });
    let shown = aerie_e2e::Kumactl::for_cp(&cp).ok(&["inspect", "dataplanes", "-o", "yaml"]);
    assert!(shown.contains("does-not-resolve.invalid"), "{shown}");

    // A proxy calling `api`, started afterwards, gets its config and reaches the good one.
    let (a3, out) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut caller = Dataplane::start(
        &cp,
        "caller-1",
        &yaml("caller-1", "caller", &loopback_ip(), a3, Some(out)),
        a3,
    );
    caller.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    for _ in 0..5 {
        assert_eq!(call(&outbound), 200);
    }

    // Where this host can make a second address, a host name that resolves is used: the
    // short dotted form of an IPv4 address is a name to the control plane (not an IP
    // literal), and the system resolver turns it into the address.
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            aerie_e2e::skipped(
                "a_dataplane_whose_address_cannot_be_used_freezes_no_other_proxy (resolved names)",
                &format!("cannot create a network namespace here ({why})"),
            );
            return;
        }
    };
    let octets: Vec<u32> = ns.host_ip.split('.').map(|o| o.parse().unwrap()).collect();
    let name = format!(
        "{}.{}.{}",
        octets[0],
        octets[1],
        octets[2] * 256 + octets[3]
    );
    let a4 = free_port("127.0.0.1");
    let mut named = Dataplane::start(&cp, "api-3", &yaml("api-3", "api", &name, a4, None), a4);
    named.wait_ready();
    wait_for("the resolved instance is an endpoint", PROPAGATION, || {
        let dump = http("GET", &caller.admin, "/config_dump", None, &[]).ok()?;
        dump.body.contains(&ns.host_ip).then_some(())
    });
    good.process.kill9();
    wait_for("calls reach the resolved instance", PROPAGATION, || {
        (call(&outbound) == 200).then_some(())
    });
}

#[test]
fn a_proxy_elsewhere_cannot_declare_a_loopback_address() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            aerie_e2e::skipped(
                "a_proxy_elsewhere_cannot_declare_a_loopback_address",
                &format!("cannot create a network namespace here ({why})"),
            );
            return;
        }
    };
    let cp = ControlPlane::start();
    let files = tempfile::tempdir().unwrap();
    let run = |name: &str, address: &str| {
        let admin = free_port("127.0.0.1");
        let yaml = format!(
            "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {address}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: 8080\n    tags:\n      kuma.io/service: web\n"
        );
        let dp_file = files.path().join(format!("{name}.yaml"));
        let token_file = files.path().join(format!("{name}.token"));
        std::fs::write(&dp_file, yaml).unwrap();
        std::fs::write(&token_file, cp.dataplane_token("default", name)).unwrap();
        let mut cmd = ns.command(&bin("kuma-dp"));
        cmd.arg("run")
            .arg("--cp-address")
            .arg(format!("https://{}:{}", ns.host_ip, cp.addrs.dp_server))
            .arg("--dataplane-file")
            .arg(&dp_file)
            .arg("--dataplane-token-file")
            .arg(&token_file);
        Process::spawn(name, cmd)
    };
    // 127.0.0.1 from another host: refused, and kuma-dp says why and exits.
    let mut liar = run("liar", "127.0.0.1");
    let status = liar.wait_exit(PROPAGATION);
    assert!(!status.success());
    let logs = liar.logs();
    assert!(
        logs.contains(
            "is a loopback address, which only a proxy on the control plane's own host may declare"
        ),
        "{logs}"
    );
    assert_eq!(cp.get("/meshes/default/dataplanes/liar").status, 404);
    // Its own address is fine.
    let mut honest = run("honest", &ns.ns_ip);
    wait_for("the honest proxy connects", PROPAGATION, || {
        if let Some(st) = honest.exited() {
            panic!("kuma-dp exited ({st}): {}", honest.logs());
        }
        cp.dataplane_overview("default", "honest")
            .filter(|o| o["online"] == true)
            .map(|_| ())
    });
}

#[test]
fn generated_private_keys_are_never_served_over_the_api() {
    let cp = ControlPlane::start();
    let r = cp.put(
        "/meshes/default",
        r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"ca-1","backends":[{"name":"ca-1","type":"builtin"}]}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let _ = cp.dataplane_token("default", "any");
    // Loopback is admin here, and still: 403, for the CA key and the token-signing keys.
    let key = "/meshes/default/secrets/default.ca-builtin-key-ca-1";
    wait_for("the CA exists", PROPAGATION, || {
        (cp.get(key).status != 404).then_some(())
    });
    for path in [
        key,
        "/meshes/default/secrets/dataplane-token-signing-key-default",
        "/globalsecrets/user-token-signing-key-1",
    ] {
        let r = cp.get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("never served over the API"), "{}", r.body);
    }
    // Lists name them without their data; the CA certificate stays readable.
    let listed = cp.get("/meshes/default/secrets").json();
    let items = listed["items"].as_array().unwrap();
    for s in items {
        let name = s["name"].as_str().unwrap();
        if name.contains("-key-") {
            assert!(s.get("data").is_none(), "{s}");
        }
    }
    assert!(
        items
            .iter()
            .any(|s| s["name"] == "default.ca-builtin-key-ca-1")
    );
    let cert = cp.get("/meshes/default/secrets/default.ca-builtin-cert-ca-1");
    assert_eq!(cert.status, 200, "{}", cert.body);
    let out = aerie_e2e::Kumactl::for_cp(&cp).fails(&[
        "get",
        "secret",
        "default.ca-builtin-key-ca-1",
        "--mesh",
        "default",
        "-o",
        "yaml",
    ]);
    assert!(out.contains("never served over the API"), "{out}");
}
