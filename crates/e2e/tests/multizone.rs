//! Multi-zone through the real binaries: a global control plane and two zones on one host
//! (separate work dirs and ports), KDS over TLS with zone tokens, sidecars and a zone
//! ingress. What syncs where, the zone's read-only copies, the global and a zone going
//! down and coming back, and a cross-zone call allowed then denied by a policy made on the
//! global.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use aerie_e2e::{
    ControlPlane, Dataplane, Kumactl, Process, bin, free_port, http, loopback_ip, start_app,
    wait_for,
};

/// How long a change may take to travel global -> zone -> proxy (or back).
const SYNC: Duration = Duration::from_secs(25);

const MTLS: &str = r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"ca-1","backends":[{"name":"ca-1","type":"builtin"}]}}"#;
const ALLOW_ALL: &str = r#"{"type":"MeshTrafficPermission","name":"allow-all","mesh":"default","spec":{"targetRef":{"kind":"Mesh"},"from":[{"targetRef":{"kind":"Mesh"},"default":{"action":"Allow"}}]}}"#;
const DENY_ALL: &str = r#"{"type":"MeshTrafficPermission","name":"deny-all","mesh":"default","spec":{"targetRef":{"kind":"Mesh"},"from":[{"targetRef":{"kind":"Mesh"},"default":{"action":"Deny"}}]}}"#;

fn global() -> (ControlPlane, u16) {
    let kds = free_port("127.0.0.1");
    let cp = ControlPlane::start_with(&[
        ("KUMA_MODE", "global"),
        ("KUMA_MULTIZONE_GLOBAL_KDS_GRPC_PORT", &kds.to_string()),
    ]);
    (cp, kds)
}

/// A zone token (scope `cp` or `ingress`) from the global's API.
fn zone_token(global: &ControlPlane, zone: &str, scope: &str) -> String {
    let body = format!(r#"{{"zone":"{zone}","scope":["{scope}"]}}"#);
    let r = http(
        "POST",
        &global.addrs.api(),
        "/tokens/zone",
        Some(&body),
        &[],
    )
    .expect("token");
    assert_eq!(r.status, 200, "zone token: {}", r.body);
    r.body
}

fn zone_env(global: &ControlPlane, kds: u16, zone: &str, token: &str) -> Vec<(String, String)> {
    vec![
        ("KUMA_MODE".into(), "zone".into()),
        ("KUMA_MULTIZONE_ZONE_NAME".into(), zone.into()),
        (
            "KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS".into(),
            format!("grpcs://127.0.0.1:{kds}"),
        ),
        (
            "KUMA_MULTIZONE_ZONE_KDS_ROOT_CA_FILE".into(),
            global
                .work_dir
                .join("tls/kds-server.crt")
                .display()
                .to_string(),
        ),
        (
            "KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE".into(),
            token.into(),
        ),
    ]
}

fn zone(global: &ControlPlane, kds: u16, name: &str) -> ControlPlane {
    let token = zone_token(global, name, "cp");
    let env = zone_env(global, kds, name, &token);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ControlPlane::start_with(&env)
}

fn json(cp: &ControlPlane, path: &str) -> Option<serde_json::Value> {
    let r = cp.get(path);
    (r.status == 200).then(|| r.json())
}

fn items(cp: &ControlPlane, path: &str) -> Vec<serde_json::Value> {
    json(cp, path)
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits until `f` holds, printing both control planes' logs on failure.
fn eventually(what: &str, cps: &[&ControlPlane], mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + SYNC;
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: Vec<String> = cps.iter().map(|c| c.logs()).collect();
    panic!("{what}: not within {SYNC:?}\n{}", logs.join("\n-----\n"));
}

fn zone_online(global: &ControlPlane, zone: &str) -> bool {
    json(global, &format!("/zones+insights/{zone}")).is_some_and(|z| {
        z["zoneInsight"]["subscriptions"]
            .as_array()
            .and_then(|s| s.last())
            .is_some_and(|s| s.get("disconnectTime").is_none())
    })
}

fn dataplane_yaml(
    name: &str,
    ip: &str,
    admin: u16,
    service: &str,
    app: u16,
    outbound: Option<(u16, &str)>,
) -> String {
    let mut y = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n"
    );
    if let Some((port, dest)) = outbound {
        y.push_str(&format!(
            "  outbound:\n  - port: {port}\n    tags:\n      kuma.io/service: {dest}\n"
        ));
    }
    y
}

#[test]
fn resources_sync_both_ways_and_zones_hold_read_only_copies() {
    let (global, kds) = global();
    let zone1 = zone(&global, kds, "zone-1");
    let zone2 = zone(&global, kds, "zone-2");

    // Global -> zones: the Mesh (a read-only copy) and a policy under its hashed name.
    global.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-all",
        ALLOW_ALL,
    );
    let hashed = aerie_core::multizone::hashed_name("allow-all", &["default"]);
    for z in [&zone1, &zone2] {
        eventually(
            "the Mesh and the policy reach the zone",
            &[&global, z],
            || {
                let mesh = json(z, "/meshes/default");
                let mtp = json(
                    z,
                    &format!("/meshes/default/meshtrafficpermissions/{hashed}"),
                );
                mesh.is_some_and(|m| m["labels"]["kuma.io/origin"] == "global")
                    && mtp.is_some_and(|p| {
                        p["labels"]["kuma.io/display-name"] == "allow-all"
                            && p["labels"]["kuma.io/origin"] == "global"
                    })
            },
        );
    }
    // Zones appear on the global when they connect, online.
    eventually("both zones online", &[&global], || {
        zone_online(&global, "zone-1") && zone_online(&global, "zone-2")
    });
    assert_eq!(items(&global, "/zones").len(), 2);
    // The control planes' KDS metrics, under Kuma's names: each zone holds two streams on
    // the global, whose messages the zones answered (delivery times) and applied (the zones
    // hold no proxies yet, so they have sent the global nothing to apply).
    let metrics = |cp: &ControlPlane| {
        let diag = format!("127.0.0.1:{}", cp.addrs.diagnostics);
        http("GET", &diag, "/metrics", None, &[]).unwrap().body
    };
    eventually("KDS metrics on the global", &[&global], || {
        let m = metrics(&global);
        m.contains("kds_zone_active_connections{zone_name=\"zone-1\",zone=\"Global\"} 2")
            && m.contains("kds_zone_active_connections{zone_name=\"zone-2\",zone=\"Global\"} 2")
            && m.contains("kds_delta_streams_active{zone=\"Global\"} 4")
            && m.contains("kds_delta_delivery_count{zone=\"Global\"}")
    });
    let m = metrics(&zone1);
    assert!(
        m.contains("kds_delta_streams_active{zone=\"zone-1\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("kds_resources_sync_count{zone=\"zone-1\"}"),
        "{m}"
    );
    let m = metrics(&global);
    assert!(
        m.lines()
            .any(|l| l.starts_with("kds_delta_responses_sent{type_url=")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("kds_delta_requests_received{")
                && l.contains("confirmation=\"ACK\"")),
        "{m}"
    );
    let kumactl = Kumactl::for_cp(&global);
    let table = kumactl.ok(&["inspect", "zones"]);
    assert!(
        table.lines().filter(|l| l.contains("Online")).count() == 2,
        "kumactl inspect zones:\n{table}"
    );
    let table = kumactl.ok(&["get", "zones"]);
    assert!(
        table.contains("zone-1") && table.contains("zone-2"),
        "{table}"
    );

    // The zone refuses global-only resources with Kuma's 405, and policies without origin.
    let r = zone1.put("/meshes/default", r#"{"type":"Mesh","name":"default"}"#);
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.body.contains("global control plane"), "{}", r.body);
    let r = zone1.put("/meshes/other", r#"{"type":"Mesh","name":"other"}"#);
    assert_eq!(r.status, 405, "{}", r.body);
    let r = http("DELETE", &zone1.addrs.api(), "/meshes/default", None, &[]).unwrap();
    assert_eq!(r.status, 405, "{}", r.body);
    let r = http(
        "DELETE",
        &zone1.addrs.api(),
        &format!("/meshes/default/meshtrafficpermissions/{hashed}"),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 405, "a synced copy is read-only: {}", r.body);
    let r = zone1.put(
        "/meshes/default/meshtrafficpermissions/local",
        &DENY_ALL.replace("deny-all", "local"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("the origin label must be set to 'zone'"),
        "{}",
        r.body
    );
    let local = DENY_ALL.replace("deny-all", "local").replace(
        r#""mesh":"default","#,
        r#""mesh":"default","labels":{"kuma.io/origin":"zone"},"#,
    );
    zone1.apply_json("/meshes/default/meshtrafficpermissions/local", &local);

    // Zone -> global: a proxy's Dataplane, under its hashed name, online.
    let _app = start_app(
        "web",
        &format!("127.0.0.1:{}", free_port("127.0.0.1")),
        false,
    );
    let admin = free_port("127.0.0.1");
    let ip = loopback_ip();
    // Tokens come from the global; the signing key reaches the zone with the mesh's secrets.
    let token = global.dataplane_token("default", "web-1");
    wait_signing_key(&global, &zone1);
    let mut web = Dataplane::start_with_token(
        &zone1,
        "web-1",
        &dataplane_yaml("web-1", &ip, admin, "web", free_port("127.0.0.1"), None),
        admin,
        &token,
    );
    web.wait_ready();
    let dp_on_global = aerie_core::multizone::hashed_name("web-1", &["default", "zone-1"]);
    eventually(
        "the Dataplane reaches the global, online",
        &[&global, &zone1],
        || {
            json(
                &global,
                &format!("/meshes/default/dataplanes+insights/{dp_on_global}"),
            )
            .is_some_and(|o| o["online"] == true)
        },
    );
    let dp = json(
        &global,
        &format!("/meshes/default/dataplanes/{dp_on_global}"),
    )
    .unwrap();
    assert_eq!(dp["labels"]["kuma.io/zone"], "zone-1");
    assert_eq!(dp["labels"]["kuma.io/display-name"], "web-1");
    // Its generated MeshService too; the zone's own policy stays in the zone.
    eventually(
        "the zone's MeshService reaches the global",
        &[&global],
        || {
            items(&global, "/meshes/default/meshservices")
                .iter()
                .any(|s| s["labels"]["kuma.io/zone"] == "zone-1")
        },
    );
    assert!(
        items(&global, "/meshes/default/meshtrafficpermissions")
            .iter()
            .all(|p| p["name"] != "local"),
        "a zone's own policy does not leave the zone"
    );
    // The global refuses to change what zones own.
    let r = http(
        "DELETE",
        &global.addrs.api(),
        &format!("/meshes/default/dataplanes/{dp_on_global}"),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 405, "{}", r.body);
    // Proxies cannot connect to the global.
    let gtoken = global.dataplane_token("default", "stray");
    let gadmin = free_port("127.0.0.1");
    let stray = Dataplane::start_with_token(
        &global,
        "stray",
        &dataplane_yaml(
            "stray",
            &loopback_ip(),
            gadmin,
            "stray",
            free_port("127.0.0.1"),
            None,
        ),
        gadmin,
        &gtoken,
    );
    wait_for("kuma-dp says the global refused it", SYNC, || {
        stray
            .process
            .logs()
            .contains("global control plane")
            .then_some(())
    });
    assert!(json(&global, "/meshes/default/dataplanes/stray").is_none());
    drop(stray);

    // A graceful stop removes the Dataplane in the zone, then on the global.
    web.process.stop();
    eventually("the Dataplane copy leaves the global", &[&global], || {
        json(
            &global,
            &format!("/meshes/default/dataplanes/{dp_on_global}"),
        )
        .is_none()
    });

    // A zone goes down: the global shows it offline; back, online and caught up.
    let mut zone2 = zone2;
    zone2.kill9();
    eventually("zone-2 offline on the global", &[&global], || {
        !zone_online(&global, "zone-2")
    });
    let table = kumactl.ok(&["inspect", "zones"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("zone-2") && l.contains("Offline")),
        "kumactl inspect zones:\n{table}"
    );
    global.apply_json("/meshes/default/meshtrafficpermissions/deny-all", DENY_ALL);
    zone2.restart();
    let hashed_deny = aerie_core::multizone::hashed_name("deny-all", &["default"]);
    eventually("zone-2 back and caught up", &[&global, &zone2], || {
        zone_online(&global, "zone-2")
            && json(
                &zone2,
                &format!("/meshes/default/meshtrafficpermissions/{hashed_deny}"),
            )
            .is_some()
    });
    // A deletion made while a zone was away reaches it too (resume sends removals).
    zone2.kill9();
    let r = http(
        "DELETE",
        &global.addrs.api(),
        "/meshes/default/meshtrafficpermissions/deny-all",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    zone2.restart();
    eventually(
        "the deletion reaches zone-2 after it returns",
        &[&global, &zone2],
        || {
            json(
                &zone2,
                &format!("/meshes/default/meshtrafficpermissions/{hashed_deny}"),
            )
            .is_none()
                && json(
                    &zone2,
                    &format!("/meshes/default/meshtrafficpermissions/{hashed}"),
                )
                .is_some()
        },
    );
}

#[test]
fn zones_without_a_valid_token_are_refused() {
    let (global, kds) = global();
    // A token for another zone, and no token at all.
    let other = zone_token(&global, "zone-9", "cp");
    let ingress_scope = zone_token(&global, "zone-3", "ingress");
    for (token, expect) in [
        (other.as_str(), "not \"zone-3\""),
        (ingress_scope.as_str(), "scope"),
        ("", "no zone token"),
    ] {
        let mut env = zone_env(&global, kds, "zone-3", token);
        if token.is_empty() {
            env.retain(|(k, _)| k != "KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE");
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let zone = ControlPlane::start_with(&env);
        eventually(
            &format!("the zone logs the refusal ({expect})"),
            &[&zone],
            || zone.logs().contains(expect),
        );
        assert!(json(&zone, "/meshes/default").is_none(), "nothing synced");
        assert!(
            json(&global, "/zones/zone-3").is_none(),
            "no Zone for a refused zone"
        );
    }
    // Disabling a connected zone disconnects it.
    let zone5 = {
        let token = zone_token(&global, "zone-5", "cp");
        let env = zone_env(&global, kds, "zone-5", &token);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ControlPlane::start_with(&env)
    };
    eventually("zone-5 online", &[&global, &zone5], || {
        zone_online(&global, "zone-5")
    });
    global.apply_json(
        "/zones/zone-5",
        r#"{"type":"Zone","name":"zone-5","enabled":false}"#,
    );
    eventually(
        "disabling zone-5 disconnects it",
        &[&global, &zone5],
        || !zone_online(&global, "zone-5") && zone5.logs().contains("disabled"),
    );
    // A disabled zone is refused too.
    global.apply_json(
        "/zones/zone-4",
        r#"{"type":"Zone","name":"zone-4","enabled":false}"#,
    );
    let zone = {
        let token = zone_token(&global, "zone-4", "cp");
        let env = zone_env(&global, kds, "zone-4", &token);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ControlPlane::start_with(&env)
    };
    eventually("the disabled zone is refused", &[&zone], || {
        zone.logs().contains("disabled")
    });
}

/// Starts a zone ingress; the returned directory holds its files and must outlive it.
fn ingress(
    zone: &ControlPlane,
    global: &ControlPlane,
    zone_name: &str,
) -> (Process, String, tempfile::TempDir) {
    let token = zone_token(global, zone_name, "ingress");
    ingress_with_token(zone, &format!("ingress-{zone_name}"), &token)
}

/// Starts a zone ingress named `name` with a given zone token.
fn ingress_with_token(
    zone: &ControlPlane,
    name: &str,
    token: &str,
) -> (Process, String, tempfile::TempDir) {
    let ip = loopback_ip();
    let port = free_port(&ip);
    let admin = free_port("127.0.0.1");
    let files = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: ZoneIngress\nname: {name}\nnetworking:\n  address: {ip}\n  port: {port}\n  admin:\n    port: {admin}\n"
    );
    let file = files.path().join("ingress.yaml");
    std::fs::write(&file, yaml).unwrap();
    let token_file = files.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let mut cmd = Command::new(bin("kuma-dp"));
    cmd.args(["run", "--proxy-type", "ingress", "--cp-address"])
        .arg(zone.dp_address())
        .arg("--ca-cert-file")
        .arg(zone.dp_ca_file())
        .arg("--dataplane-file")
        .arg(&file)
        .arg("--dataplane-token-file")
        .arg(&token_file);
    let p = Process::spawn(name, cmd);
    (p, format!("127.0.0.1:{admin}"), files)
}

/// Waits until an ingress's admin `/ready` answers 200 (failing if it exits).
fn wait_ingress_ready(ingress: &mut Process, admin: &str) {
    wait_for("the ingress is ready", SYNC, || {
        if let Some(st) = ingress.exited() {
            panic!("ingress exited ({st}): {}", ingress.logs());
        }
        http("GET", admin, "/ready", None, &[])
            .is_ok_and(|r| r.status == 200)
            .then_some(())
    });
}

/// Waits until the zone holds the global's dataplane-token signing key for `default`.
fn wait_signing_key(global: &ControlPlane, zone: &ControlPlane) {
    eventually(
        "the dataplane token signing key reaches the zone",
        &[global, zone],
        || {
            items(zone, "/meshes/default/secrets").iter().any(|s| {
                s["name"] == "dataplane-token-signing-key-default"
                    && s["labels"]["kuma.io/origin"] == "global"
            })
        },
    );
}

fn call(outbound: &str) -> u16 {
    http("GET", outbound, "/check-in", None, &[])
        .map(|r| r.status)
        .unwrap_or(0)
}

#[test]
fn a_cross_zone_call_goes_through_the_ingress_and_obeys_global_policy() {
    let (global, kds) = global();
    let zone1 = zone(&global, kds, "zone-1");
    let zone2 = zone(&global, kds, "zone-2");
    global.apply_json("/meshes/default", MTLS);
    global.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-all",
        ALLOW_ALL,
    );
    let token = global.dataplane_token("default", "check-in-api-1");
    let fc_token = global.dataplane_token("default", "flight-control-1");
    for z in [&zone1, &zone2] {
        eventually("the mesh CA reaches the zone", &[&global, z], || {
            json(z, "/meshes/default").is_some_and(|m| m["mtls"]["enabledBackend"] == "ca-1")
                && json(z, "/meshes/default/secrets/default.ca-builtin-cert-ca-1").is_some()
        });
        wait_signing_key(&global, z);
    }

    // zone-2: check-in-api behind its sidecar, and the zone ingress.
    let checkin_app_port = free_port("127.0.0.1");
    let _checkin_app = start_app(
        "check-in-api",
        &format!("127.0.0.1:{checkin_app_port}"),
        false,
    );
    let admin = free_port("127.0.0.1");
    let mut checkin = Dataplane::start_with_token(
        &zone2,
        "check-in-api-1",
        &dataplane_yaml(
            "check-in-api-1",
            &loopback_ip(),
            admin,
            "check-in-api",
            checkin_app_port,
            None,
        ),
        admin,
        &token,
    );
    checkin.wait_ready();
    let (mut ingress2, ingress_admin, _ingress_files) = ingress(&zone2, &global, "zone-2");
    wait_ingress_ready(&mut ingress2, &ingress_admin);
    // The ingress lists check-in-api, and zone-1 learns about it through the global.
    eventually(
        "zone-1 sees zone-2's ingress offering check-in-api",
        &[&global, &zone1, &zone2],
        || {
            items(&zone1, "/zoneingresses").iter().any(|i| {
                i["zone"] == "zone-2"
                    && i["availableServices"].as_array().is_some_and(|s| {
                        s.iter()
                            .any(|s| s["tags"]["kuma.io/service"] == "check-in-api")
                    })
            })
        },
    );

    eventually(
        "the global shows zone-2's ingress, online",
        &[&global, &zone2],
        || {
            items(&global, "/zoneingresses+insights")
                .iter()
                .any(|i| i["online"] == true && i["labels"]["kuma.io/zone"] == "zone-2")
        },
    );
    let table = Kumactl::for_cp(&zone2).ok(&["inspect", "zoneingresses"]);
    assert!(
        table.contains("ingress-zone-2") && table.contains("Online"),
        "kumactl inspect zoneingresses on zone-2:\n{table}"
    );

    // zone-1: flight-control calls check-in-api through its outbound.
    let fc_app = free_port("127.0.0.1");
    let _fc = start_app("flight-control", &format!("127.0.0.1:{fc_app}"), false);
    let out = free_port("127.0.0.1");
    let admin = free_port("127.0.0.1");
    let mut fc = Dataplane::start_with_token(
        &zone1,
        "flight-control-1",
        &dataplane_yaml(
            "flight-control-1",
            &loopback_ip(),
            admin,
            "flight-control",
            fc_app,
            Some((out, "check-in-api")),
        ),
        admin,
        &fc_token,
    );
    fc.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    eventually(
        "flight-control (zone-1) reaches check-in-api (zone-2)",
        &[&global, &zone1, &zone2],
        || call(&outbound) == 200,
    );
    // The destination sidecar saw the caller's own identity.
    assert!(
        checkin.stats().contains("flight-control"),
        "check-in-api's sidecar counts the caller by its service:\n{}",
        checkin.stats()
    );

    // A policy change on the global: allow-all gone, deny-all in: 403 at the destination.
    global.apply_json("/meshes/default/meshtrafficpermissions/deny-all", DENY_ALL);
    let r = http(
        "DELETE",
        &global.addrs.api(),
        "/meshes/default/meshtrafficpermissions/allow-all",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    eventually("the cross-zone call is denied", &[&global, &zone2], || {
        call(&outbound) == 403
    });

    // The global goes down: proxies in both zones do not notice; policies made in a zone
    // still apply there.
    let mut global = global;
    global.kill9();
    let allow_local = ALLOW_ALL.replace("allow-all", "allow-local").replace(
        r#""mesh":"default","#,
        r#""mesh":"default","labels":{"kuma.io/origin":"zone"},"#,
    );
    zone2.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-local",
        &allow_local,
    );
    eventually(
        "a zone policy works while the global is down",
        &[&zone2],
        || call(&outbound) == 200,
    );
    assert!(fc.process.exited().is_none() && checkin.process.exited().is_none());
    // A proxy joins zone-1 meanwhile (its token from the zone, signed with the global's key
    // the zone received); the global learns about it when it returns.
    let late_token = zone1.dataplane_token("default", "late-1");
    let late_admin = free_port("127.0.0.1");
    let mut late = Dataplane::start_with_token(
        &zone1,
        "late-1",
        &dataplane_yaml(
            "late-1",
            &loopback_ip(),
            late_admin,
            "late",
            free_port("127.0.0.1"),
            None,
        ),
        late_admin,
        &late_token,
    );
    late.wait_ready();
    global.restart();
    eventually("the zones reconnect", &[&global], || {
        zone_online(&global, "zone-1") && zone_online(&global, "zone-2")
    });
    let late_on_global = aerie_core::multizone::hashed_name("late-1", &["default", "zone-1"]);
    eventually(
        "the global catches up with zone-1",
        &[&global, &zone1],
        || {
            json(
                &global,
                &format!("/meshes/default/dataplanes+insights/{late_on_global}"),
            )
            .is_some_and(|o| o["online"] == true)
        },
    );
    assert_eq!(call(&outbound), 200, "traffic never depended on the global");
}

/// Accepts any server certificate: the attacker does not care whom it talks to.
#[derive(Debug)]
struct AnyServer(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Speaks HTTPS to whatever the ingress routes `sni` to, as an outsider with no certificate:
/// one request, the raw answer (Err when the connection fails or closes unanswered).
fn through_ingress(ingress: &str, sni: &str, request: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(ingress).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    if out.is_empty() {
        return Err("closed without an answer".into());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The attack: a workload token registers a Dataplane whose address and inbound port are the
/// zone control plane's HTTPS API, so the zone ingress routes `<service>.default.mesh` there
/// as raw TCP; an outsider who can reach the ingress then talks to the API through it. The
/// API must not mistake the relayed connection for a local admin, and must never serve the
/// mesh CA's key or mint tokens for it.
#[test]
fn a_workload_token_cannot_reach_the_ca_key_through_the_ingress() {
    let (global, kds) = global();
    let zone = zone(&global, kds, "zone-1");
    global.apply_json("/meshes/default", MTLS);
    eventually("the mesh CA reaches the zone", &[&global, &zone], || {
        json(&zone, "/meshes/default").is_some_and(|m| m["mtls"]["enabledBackend"] == "ca-1")
            && json(
                &zone,
                "/meshes/default/secrets/default.ca-builtin-cert-ca-1",
            )
            .is_some()
    });
    // The attacker's proxy: an ordinary dataplane token. Its inbound cannot bind (the API
    // holds the port) but its session makes it a live endpoint.
    let token = global.dataplane_token("default", "evil-1");
    wait_signing_key(&global, &zone);
    let admin = free_port("127.0.0.1");
    let yaml = format!(
        "type: Dataplane\nmesh: default\nname: evil-1\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: {}\n    servicePort: {}\n    tags:\n      kuma.io/service: evil\n",
        zone.addrs.ip,
        zone.addrs.https,
        free_port("127.0.0.1"),
    );
    let _evil = Dataplane::start_with_token(&zone, "evil-1", &yaml, admin, &token);
    let (mut ingress_proc, ingress_admin, ingress_files) = ingress(&zone, &global, "zone-1");
    wait_for("the ingress is ready", SYNC, || {
        if let Some(st) = ingress_proc.exited() {
            panic!("ingress exited ({st}): {}", ingress_proc.logs());
        }
        http("GET", &ingress_admin, "/ready", None, &[])
            .is_ok_and(|r| r.status == 200)
            .then_some(())
    });
    let listen = {
        let y = std::fs::read_to_string(ingress_files.path().join("ingress.yaml")).unwrap();
        let field = |k: &str| {
            y.lines()
                .find_map(|l| l.trim().strip_prefix(k))
                .unwrap()
                .trim()
                .to_string()
        };
        format!("{}:{}", field("address:"), field("port:"))
    };
    eventually(
        "the ingress routes the attacker's service",
        &[&zone],
        || {
            http("GET", &ingress_admin, "/config_dump", None, &[]).is_ok_and(|r| {
                r.body.contains("evil.default.mesh") && r.body.contains(&zone.addrs.ip)
            })
        },
    );

    // Through the ingress, the API answers (the relay works) but as to a stranger.
    let root = through_ingress(
        &listen,
        "evil.default.mesh",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("the API answers through the relay");
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
    let key = through_ingress(
        &listen,
        "evil.default.mesh",
        "GET /meshes/default/secrets/default.ca-builtin-key-ca-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(key.starts_with("HTTP/1.1 401"), "{key}");
    assert!(!key.contains("\"data\""), "{key}");
    let body = r#"{"name":"mallory","groups":["mesh-system:admin"]}"#;
    let mint = through_ingress(
        &listen,
        "evil.default.mesh",
        &format!(
            "POST /tokens/user HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    assert!(mint.starts_with("HTTP/1.1 401"), "{mint}");
    // And an admin on the host itself is still an admin, yet gets no key either.
    let r = zone.get("/meshes/default/secrets/default.ca-builtin-key-ca-1");
    assert_eq!(r.status, 403, "{}", r.body);
}

/// The id (`jti`) of a token: what a revocation lists.
fn token_id(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.trim().split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    claims["jti"].as_str().expect("jti").to_string()
}

/// Revokes tokens as a Kuma user does: `kumactl apply` of the revocations secret (`head`:
/// its type, name and mesh) holding the base64 of the comma-separated token ids.
fn revoke(kumactl: &Kumactl, head: &str, ids: &[&str]) {
    use base64::Engine as _;
    let list = base64::engine::general_purpose::STANDARD.encode(ids.join(","));
    kumactl.sh_ok(&format!(
        "printf '%s\\ndata: {{{{ revocations }}}}\\n' '{head}' | kumactl apply --var revocations={list} -f -"
    ));
}

/// Waits until a proxy process exits on its own; returns its exit status and logs.
fn wait_exit(
    p: &mut Process,
    what: &str,
    cps: &[&ControlPlane],
) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + SYNC;
    while std::time::Instant::now() < deadline {
        if let Some(st) = p.exited() {
            return (st, p.logs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: Vec<String> = cps.iter().map(|c| c.logs()).collect();
    panic!(
        "{what}: still running after {SYNC:?}\n{}\n-----\n{}",
        p.logs(),
        logs.join("\n-----\n")
    );
}

#[test]
fn revocations_made_on_the_global_reach_the_zones_and_end_connected_proxies() {
    let (global, kds) = global();
    let kumactl = Kumactl::for_cp(&global);
    let cp_token = zone_token(&global, "zone-1", "cp");
    let env = zone_env(&global, kds, "zone-1", &cp_token);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let zone1 = ControlPlane::start_with(&env);
    eventually("zone-1 online", &[&global, &zone1], || {
        zone_online(&global, "zone-1")
    });

    // An ingress connected with its zone token, and a sidecar with its dataplane token.
    eventually(
        "the zone token public key reaches the zone",
        &[&global, &zone1],
        || json(&zone1, "/globalsecrets/zone-token-signing-public-key-1").is_some(),
    );
    let ingress_token = zone_token(&global, "zone-1", "ingress");
    let (mut ingress1, admin1, _files1) = ingress_with_token(&zone1, "ingress-1", &ingress_token);
    wait_ingress_ready(&mut ingress1, &admin1);
    let dp_token = global.dataplane_token("default", "web-1");
    wait_signing_key(&global, &zone1);
    let admin = free_port("127.0.0.1");
    let web_yaml = dataplane_yaml(
        "web-1",
        &loopback_ip(),
        admin,
        "web",
        free_port("127.0.0.1"),
        None,
    );
    let mut web = Dataplane::start_with_token(&zone1, "web-1", &web_yaml, admin, &dp_token);
    web.wait_ready();

    // The ingress token is revoked on the global: the zone gets the list (read-only there)
    // and the connected ingress is disconnected and stops, saying why.
    revoke(
        &kumactl,
        "type: GlobalSecret\nname: zone-token-revocations",
        &[&token_id(&ingress_token)],
    );
    let (status, logs) = wait_exit(
        &mut ingress1,
        "the revoked ingress stops",
        &[&global, &zone1],
    );
    assert!(!status.success(), "{logs}");
    assert!(
        logs.contains(
            "the control plane refused this proxy: invalid zone token: it has been revoked"
        ),
        "{logs}"
    );
    let copy = json(&zone1, "/globalsecrets/zone-token-revocations").expect("the zone's copy");
    assert_eq!(copy["labels"]["kuma.io/origin"], "global");
    let r = zone1.put(
        "/globalsecrets/zone-token-revocations",
        r#"{"type":"GlobalSecret","name":"zone-token-revocations","data":"eA=="}"#,
    );
    assert_eq!(r.status, 405, "the zone cannot change the list: {}", r.body);
    // Started again with the revoked token, it is refused at once.
    let (mut again, _, _files_again) = ingress_with_token(&zone1, "ingress-1", &ingress_token);
    let (status, logs) = wait_exit(&mut again, "the revoked ingress is refused", &[&zone1]);
    assert!(
        !status.success() && logs.contains("it has been revoked"),
        "{logs}"
    );
    // A fresh token still works; the sidecar was not affected.
    let fresh = zone_token(&global, "zone-1", "ingress");
    let (mut ingress2, admin2, _files2) = ingress_with_token(&zone1, "ingress-2", &fresh);
    wait_ingress_ready(&mut ingress2, &admin2);
    assert!(web.process.exited().is_none(), "{}", web.process.logs());

    // A dataplane token revoked on the global: the connected sidecar is disconnected.
    revoke(
        &kumactl,
        "type: Secret\nname: dataplane-token-revocations-default\nmesh: default",
        &[&token_id(&dp_token)],
    );
    let (status, logs) = wait_exit(
        &mut web.process,
        "the revoked sidecar stops",
        &[&global, &zone1],
    );
    assert!(!status.success(), "{logs}");
    assert!(
        logs.contains(
            "the control plane refused this proxy: invalid dataplane token: it has been revoked"
        ),
        "{logs}"
    );
    let mut web_again = Dataplane::start_with_token(&zone1, "web-1", &web_yaml, admin, &dp_token);
    let (status, logs) = wait_exit(
        &mut web_again.process,
        "the revoked sidecar is refused",
        &[&zone1],
    );
    assert!(
        !status.success() && logs.contains("it has been revoked"),
        "{logs}"
    );
    assert!(ingress2.exited().is_none(), "{}", ingress2.logs());

    // The zone's own token revoked: the global ends its connection and refuses the next.
    revoke(
        &kumactl,
        "type: GlobalSecret\nname: zone-token-revocations",
        &[&token_id(&ingress_token), &token_id(&cp_token)],
    );
    eventually(
        "zone-1 disconnected and refused",
        &[&global, &zone1],
        || !zone_online(&global, "zone-1") && zone1.logs().contains("it has been revoked"),
    );
}

#[test]
fn a_proxy_waits_for_what_its_zone_lacks_and_an_invalid_token_stays_fatal() {
    let (mut global, kds) = global();
    // zone-1 syncs the mesh, then goes away; zone-2 has never connected.
    let mut zone1 = zone(&global, kds, "zone-1");
    eventually("the mesh reaches zone-1", &[&global, &zone1], || {
        json(&zone1, "/meshes/default").is_some()
    });
    zone1.kill9();
    let zone2_token = zone_token(&global, "zone-2", "cp");
    let ingress_token = zone_token(&global, "zone-2", "ingress");
    // Tokens made on the global while neither zone is connected; then the global stops.
    let token1 = global.dataplane_token("default", "web-1");
    let token2 = global.dataplane_token("default", "web-2");
    global.stop();

    // zone-1 got the mesh's signing key with the mesh, before any token existed: its proxy
    // connects although the global is down.
    zone1.restart();
    let admin = free_port("127.0.0.1");
    let yaml = dataplane_yaml(
        "web-1",
        &loopback_ip(),
        admin,
        "web",
        free_port("127.0.0.1"),
        None,
    );
    let mut web1 = Dataplane::start_with_token(&zone1, "web-1", &yaml, admin, &token1);
    web1.wait_ready();

    // zone-2 has nothing yet: its proxy does not exit, it retries and keeps saying why.
    let env = zone_env(&global, kds, "zone-2", &zone2_token);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let zone2 = ControlPlane::start_with(&env);
    let admin2 = free_port("127.0.0.1");
    let yaml2 = dataplane_yaml(
        "web-2",
        &loopback_ip(),
        admin2,
        "web",
        free_port("127.0.0.1"),
        None,
    );
    let mut web2 = Dataplane::start_with_token(&zone2, "web-2", &yaml2, admin2, &token2);
    wait_for("kuma-dp logs why, twice", SYNC, || {
        if let Some(st) = web2.process.exited() {
            panic!("kuma-dp exited ({st}):\n{}", web2.process.logs());
        }
        let logs = web2.process.logs();
        (logs
            .matches("has not arrived from the global control plane yet")
            .count()
            >= 2)
            .then_some(())
    });
    assert!(
        web2.process.logs().contains("retrying"),
        "{}",
        web2.process.logs()
    );
    // So does an ingress: the zone cannot check its zone token without the global's key.
    let (mut ingress2, ingress_admin, _ingress_files) =
        ingress_with_token(&zone2, "ingress-zone-2", &ingress_token);
    wait_for("the ingress logs why, twice", SYNC, || {
        if let Some(st) = ingress2.exited() {
            panic!("the ingress exited ({st}):\n{}", ingress2.logs());
        }
        (ingress2
            .logs()
            .matches("the zone token public key (zone-token-signing-public-key-1) has not arrived from the global control plane yet")
            .count()
            >= 2)
            .then_some(())
    });

    // The global returns: zone-2 syncs, and the waiting proxy connects and becomes ready.
    global.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http("GET", &web2.admin, "/ready", None, &[]).map_or(true, |r| r.status != 200) {
        if let Some(st) = web2.process.exited() {
            panic!("kuma-dp exited ({st}):\n{}", web2.process.logs());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kuma-dp not ready after the global returned:\n{}\n-----\n{}",
            web2.process.logs(),
            zone2.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    wait_ingress_ready(&mut ingress2, &ingress_admin);

    // Fatal stays fatal: a plainly invalid token ends kuma-dp with a clear message.
    let admin3 = free_port("127.0.0.1");
    let yaml3 = dataplane_yaml(
        "web-3",
        &loopback_ip(),
        admin3,
        "web",
        free_port("127.0.0.1"),
        None,
    );
    let mut bad = Dataplane::start_with_token(&zone2, "web-3", &yaml3, admin3, "not-a-token");
    let (status, logs) = wait_exit(
        &mut bad.process,
        "kuma-dp with an invalid token exits",
        &[&zone2],
    );
    assert!(!status.success(), "{logs}");
    assert!(
        logs.contains("the control plane refused this proxy: invalid dataplane token"),
        "{logs}"
    );
    assert!(web1.process.exited().is_none() && web2.process.exited().is_none());
}

/// A Secret of mesh `default` holding `text` (base64), as JSON for the API.
fn secret_json(name: &str, text: &str) -> String {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(text);
    format!(r#"{{"type":"Secret","name":"{name}","mesh":"default","data":"{data}"}}"#)
}

#[test]
fn a_zone_uses_the_mesh_ca_only_once_both_halves_arrived_and_match() {
    let (global, kds) = global();
    let zone1 = zone(&global, kds, "zone-1");
    let year = Duration::from_secs(365 * 86_400);
    let ca = aerie_identity::CertificateAuthority::generate("default", year).unwrap();
    let other = aerie_identity::CertificateAuthority::generate("default", year).unwrap();
    let (cert, key) = (
        "default.ca-builtin-cert-ca-1",
        "default.ca-builtin-key-ca-1",
    );
    // mTLS on with a builtin CA whose certificate exists without its key: the global does
    // not make a CA over half a pair, and the zone gets the certificate alone.
    global.apply_json(
        &format!("/meshes/default/secrets/{cert}"),
        &secret_json(cert, ca.cert_pem()),
    );
    global.apply_json("/meshes/default", MTLS);
    global.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-all",
        ALLOW_ALL,
    );
    eventually(
        "the mesh and the certificate reach the zone",
        &[&global, &zone1],
        || {
            json(&zone1, "/meshes/default").is_some_and(|m| m["mtls"]["enabledBackend"] == "ca-1")
                && json(&zone1, &format!("/meshes/default/secrets/{cert}")).is_some()
        },
    );
    let token = global.dataplane_token("default", "web-1");
    wait_signing_key(&global, &zone1);
    let admin = free_port("127.0.0.1");
    let yaml = dataplane_yaml(
        "web-1",
        &loopback_ip(),
        admin,
        "web",
        free_port("127.0.0.1"),
        None,
    );
    let mut web = Dataplane::start_with_token(&zone1, "web-1", &yaml, admin, &token);
    let ready = |web: &Dataplane| {
        http("GET", &web.admin, "/ready", None, &[]).is_ok_and(|r| r.status == 200)
    };
    eventually("the zone says it waits for the key", &[&zone1], || {
        zone1.logs().contains(&format!(
            "waiting for the CA secret {key} from the global control plane"
        ))
    });
    assert!(!ready(&web), "no identity from half a CA");
    assert_eq!(
        zone1.get(&format!("/meshes/default/secrets/{key}")).status,
        404
    );

    // A key that is not the certificate's: still not used.
    global.apply_json(
        &format!("/meshes/default/secrets/{key}"),
        &secret_json(key, other.key_pem()),
    );
    eventually("the zone says the halves do not match", &[&zone1], || {
        zone1.logs().contains("does not match its certificate yet")
    });
    assert!(!ready(&web), "no identity from a mismatched pair");

    // The matching key: the proxy gets its identity from that CA.
    global.apply_json(
        &format!("/meshes/default/secrets/{key}"),
        &secret_json(key, ca.key_pem()),
    );
    web.wait_ready();
    // The zone signed with the global's pair, the only CA it holds (it never makes one).
    use base64::Engine as _;
    let text = |name: &str| {
        let s = json(&zone1, &format!("/meshes/default/secrets/{name}")).expect(name);
        let data = base64::engine::general_purpose::STANDARD
            .decode(s["data"].as_str().unwrap())
            .unwrap();
        String::from_utf8(data).unwrap()
    };
    assert_eq!(text(cert), ca.cert_pem());
    // The key is there, and (as every generated private key) never served over the API.
    assert_eq!(
        zone1.get(&format!("/meshes/default/secrets/{key}")).status,
        403
    );
    let names: Vec<String> = items(&zone1, "/meshes/default/secrets")
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .filter(|n| n.contains(".ca-builtin-"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Which app answered a call through `outbound` (its name), or the status.
fn answered_by(outbound: &str) -> Result<String, u16> {
    let r = http("GET", outbound, "/check-in", None, &[]).map_err(|_| 0u16)?;
    if r.status != 200 {
        return Err(r.status);
    }
    Ok(r.json()["service"].as_str().unwrap_or_default().to_owned())
}

/// MeshLoadBalancingStrategy's locality awareness across zones: check-in-api runs in both
/// zones; flight-control (zone-1) balances over both until a strategy applies, then stays
/// in its zone, takes zone-2 over when its own instance is gone, and takes no zone a
/// failover rule leaves out.
#[test]
fn a_load_balancing_strategy_keeps_traffic_in_the_zone_and_fails_over() {
    let (global, kds) = global();
    let zone1 = zone(&global, kds, "zone-1");
    let zone2 = zone(&global, kds, "zone-2");
    global.apply_json("/meshes/default", MTLS);
    global.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-all",
        ALLOW_ALL,
    );
    for z in [&zone1, &zone2] {
        eventually("the mesh CA reaches the zone", &[&global, z], || {
            json(z, "/meshes/default").is_some_and(|m| m["mtls"]["enabledBackend"] == "ca-1")
                && json(z, "/meshes/default/secrets/default.ca-builtin-cert-ca-1").is_some()
        });
        wait_signing_key(&global, z);
    }
    // One check-in-api instance per zone, each app named after its zone.
    let instance = |zone: &ControlPlane, name: &str, app_name: &str| {
        let app_port = free_port("127.0.0.1");
        let app = start_app(app_name, &format!("127.0.0.1:{app_port}"), false);
        let admin = free_port("127.0.0.1");
        let token = global.dataplane_token("default", name);
        let mut dp = Dataplane::start_with_token(
            zone,
            name,
            &dataplane_yaml(name, &loopback_ip(), admin, "check-in-api", app_port, None),
            admin,
            &token,
        );
        dp.wait_ready();
        (app, dp)
    };
    let _remote = instance(&zone2, "check-in-api-2", "check-in-api-zone-2");
    let (_local_app, mut local_dp) = instance(&zone1, "check-in-api-1", "check-in-api-zone-1");
    let (mut ingress2, ingress_admin, _ingress_files) = ingress(&zone2, &global, "zone-2");
    wait_ingress_ready(&mut ingress2, &ingress_admin);

    let fc_token = global.dataplane_token("default", "flight-control-1");
    let fc_app = free_port("127.0.0.1");
    let _fc = start_app("flight-control", &format!("127.0.0.1:{fc_app}"), false);
    let out = free_port("127.0.0.1");
    let admin = free_port("127.0.0.1");
    let mut fc = Dataplane::start_with_token(
        &zone1,
        "flight-control-1",
        &dataplane_yaml(
            "flight-control-1",
            &loopback_ip(),
            admin,
            "flight-control",
            fc_app,
            Some((out, "check-in-api")),
        ),
        admin,
        &fc_token,
    );
    fc.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    let zones_seen = |calls: usize| -> Vec<Result<String, u16>> {
        let mut seen: Vec<_> = (0..calls).map(|_| answered_by(&outbound)).collect();
        seen.sort();
        seen.dedup();
        seen
    };
    // No strategy: round robin over both zones.
    eventually(
        "flight-control reaches check-in-api in both zones",
        &[&global, &zone1, &zone2],
        || {
            zones_seen(10)
                == [
                    Ok("check-in-api-zone-1".to_owned()),
                    Ok("check-in-api-zone-2".to_owned()),
                ]
        },
    );

    // A strategy made on the global: locality aware (the default), traffic stays local.
    let strategy = |default: &str| {
        format!(
            r#"{{"type":"MeshLoadBalancingStrategy","name":"local-first","mesh":"default","spec":{{"targetRef":{{"kind":"Mesh"}},"to":[{{"targetRef":{{"kind":"Mesh"}},"default":{default}}}]}}}}"#
        )
    };
    global.apply_json(
        "/meshes/default/meshloadbalancingstrategies/local-first",
        &strategy(r#"{"loadBalancer":{"type":"RoundRobin"}}"#),
    );
    eventually("traffic stays in zone-1", &[&global, &zone1], || {
        zones_seen(20) == [Ok("check-in-api-zone-1".to_owned())]
    });

    // A failover rule admitting only zone-3: zone-2 is never used, even with zone-1's
    // instance gone.
    global.apply_json(
        "/meshes/default/meshloadbalancingstrategies/local-first",
        &strategy(
            r#"{"localityAwareness":{"crossZone":{"failover":[{"to":{"type":"Only","zones":["zone-3"]}}]}}}"#,
        ),
    );
    let explained = || {
        json(
            &zone1,
            "/meshes/default/dataplanes/flight-control-1/_explain",
        )
        .map(|e| e["outbounds"][0]["meshLoadBalancingStrategy"]["effective"].clone())
    };
    eventually(
        "the failover rule reaches zone-1",
        &[&global, &zone1],
        || explained().is_some_and(|e| e["locality"]["failover"][0]["zones"]["type"] == "Only"),
    );
    local_dp.process.kill9();
    eventually(
        "without its local instance, flight-control gets no answer",
        &[&zone1],
        || zones_seen(5) == [Err(503)],
    );
    // Any zone may take over: zone-2 answers.
    global.apply_json(
        "/meshes/default/meshloadbalancingstrategies/local-first",
        &strategy(r#"{"localityAwareness":{"crossZone":{"failover":[{"to":{"type":"Any"}}]}}}"#),
    );
    eventually("zone-2 takes over", &[&global, &zone1], || {
        zones_seen(10) == [Ok("check-in-api-zone-2".to_owned())]
    });
}
