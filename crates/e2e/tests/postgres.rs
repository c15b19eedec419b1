//! kuma-cp on PostgreSQL through the real binaries: migrations, two replicas on one
//! database, optimistic concurrency over the API. Needs `AERIE_TEST_POSTGRES_URL` (set by
//! `.ci/run`) and `psql`; says SKIPPED otherwise.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use aerie_e2e::{ControlPlane, Kumactl, bin, http, skipped, text, wait_for};

/// A fresh database for one test, dropped at the end.
struct Database {
    admin_url: String,
    name: String,
    host: String,
    port: String,
    user: String,
}

impl Database {
    fn create(test: &str) -> Option<Database> {
        let Ok(url) = std::env::var("AERIE_TEST_POSTGRES_URL") else {
            skipped(test, "AERIE_TEST_POSTGRES_URL not set");
            return None;
        };
        // postgres://user[:password]@host:port/db
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))?;
        let (creds, hostpart) = rest.split_once('@')?;
        let user = creds.split(':').next()?.to_string();
        let (hostport, _) = hostpart.split_once('/').unwrap_or((hostpart, ""));
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
        let name = format!("aerie_e2e_{}_{}", std::process::id(), rand_suffix());
        let db = Database {
            admin_url: url.clone(),
            name,
            host: host.into(),
            port: port.into(),
            user,
        };
        if let Err(e) = db.psql(&format!("CREATE DATABASE {}", db.name)) {
            skipped(test, &format!("cannot create a database with psql: {e}"));
            return None;
        }
        Some(db)
    }

    fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .arg(&self.admin_url)
            .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KUMA_STORE_TYPE".into(), "postgres".into()),
            ("KUMA_STORE_POSTGRES_HOST".into(), self.host.clone()),
            ("KUMA_STORE_POSTGRES_PORT".into(), self.port.clone()),
            ("KUMA_STORE_POSTGRES_USER".into(), self.user.clone()),
            ("KUMA_STORE_POSTGRES_PASSWORD".into(), String::new()),
            ("KUMA_STORE_POSTGRES_DB_NAME".into(), self.name.clone()),
        ]
    }

    fn migrate(&self) -> std::process::Output {
        let mut cmd = Command::new(bin("kuma-cp"));
        cmd.args(["migrate", "up"]);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().expect("kuma-cp migrate up")
    }

    fn start_cp(&self) -> ControlPlane {
        let env = self.env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ControlPlane::start_with(&pairs)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() % 1_000_000
}

const MTP: &str = r#"{"type":"MeshTrafficPermission","name":"NAME","mesh":"default","spec":{"targetRef":{"kind":"Mesh"},"from":[{"targetRef":{"kind":"Mesh"},"default":{"action":"Allow"}}]}}"#;

#[test]
fn migrations_are_required_and_idempotent() {
    let Some(db) = Database::create("migrations_are_required_and_idempotent") else {
        return;
    };
    // Without migrations the control plane refuses to start and says what to run.
    let probe = ControlPlaneProbe::new(&db);
    let out = probe.run_once();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("kuma-cp migrate up"),
        "{}",
        text(&out.stderr)
    );
    let out = db.migrate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("applied"),
        "{}",
        text(&out.stdout)
    );
    let again = db.migrate();
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("up to date"),
        "{}",
        text(&again.stdout)
    );
    let cp = db.start_cp();
    assert_eq!(cp.get("/meshes").json()["total"], 1);
}

/// Runs `kuma-cp run` once with the database's settings, expecting it to exit by itself.
struct ControlPlaneProbe<'a>(&'a Database);

impl<'a> ControlPlaneProbe<'a> {
    fn new(db: &'a Database) -> Self {
        Self(db)
    }

    fn run_once(&self) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin("kuma-cp"));
        cmd.arg("run").env("KUMA_GENERAL_WORK_DIR", dir.path());
        for (k, v) in self.0.env() {
            cmd.env(k, v);
        }
        let ip = aerie_e2e::loopback_ip();
        let a = aerie_e2e::CpAddrs::new(&ip);
        cmd.env("KUMA_API_SERVER_HTTP_INTERFACE", &ip)
            .env("KUMA_API_SERVER_HTTP_PORT", a.http.to_string())
            .env("KUMA_API_SERVER_HTTPS_PORT", a.https.to_string())
            .env("KUMA_DIAGNOSTICS_SERVER_PORT", a.diagnostics.to_string())
            .env("KUMA_MONITORING_ASSIGNMENT_SERVER_PORT", a.mads.to_string())
            .env("KUMA_DP_SERVER_PORT", a.dp_server.to_string());
        cmd.output().expect("kuma-cp run")
    }
}

#[test]
fn two_replicas_share_one_database() {
    let Some(db) = Database::create("two_replicas_share_one_database") else {
        return;
    };
    assert!(db.migrate().status.success());
    let a = db.start_cp();
    let b = db.start_cp();
    // The default mesh is created once even though both replicas started.
    assert_eq!(a.get("/meshes").json()["total"], 1);
    assert_eq!(
        a.put(
            "/meshes/default/meshtrafficpermissions/p1",
            &MTP.replace("NAME", "p1")
        )
        .status,
        201
    );
    wait_for(
        "the write on A visible on B",
        Duration::from_secs(1),
        || (b.get("/meshes/default/meshtrafficpermissions/p1").status == 200).then_some(()),
    );
    // Both replicas use the same signing keys: a token from A works on B.
    let k = Kumactl::for_cp(&b);
    let token = Kumactl::for_cp(&a).ok(&[
        "generate",
        "dataplane-token",
        "--name",
        "x",
        "--mesh",
        "default",
    ]);
    assert_eq!(token.trim().split('.').count(), 3);
    let out = k.run(&["get", "meshtrafficpermissions"]);
    assert!(text(&out.stdout).contains("p1"));
}

#[test]
fn concurrent_updates_of_one_resource_yield_a_conflict() {
    let Some(db) = Database::create("concurrent_updates_of_one_resource_yield_a_conflict") else {
        return;
    };
    assert!(db.migrate().status.success());
    let a = db.start_cp();
    let b = db.start_cp();
    assert_eq!(
        a.put(
            "/meshes/default/meshtrafficpermissions/hot",
            &MTP.replace("NAME", "hot")
        )
        .status,
        201
    );
    let mut conflicts = 0;
    let mut statuses = Vec::new();
    for round in 0..40 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [a.addrs.api(), b.addrs.api()]
            .into_iter()
            .enumerate()
            .map(|(i, api)| {
                let barrier = barrier.clone();
                let body = MTP.replace("NAME", "hot").replace(
                    "\"spec\"",
                    &format!("\"labels\":{{\"writer\":\"w{i}-{round}\"}},\"spec\""),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    http(
                        "PUT",
                        &api,
                        "/meshes/default/meshtrafficpermissions/hot",
                        Some(&body),
                        &[],
                    )
                    .map(|r| (r.status, r.body))
                    .unwrap()
                })
            })
            .collect();
        for h in handles {
            let (status, body) = h.join().unwrap();
            if status == 409 {
                conflicts += 1;
                assert!(body.contains("Conflict"), "{body}");
            }
            statuses.push(status);
        }
        if conflicts > 0 && round >= 10 {
            break;
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert!(
        conflicts > 0,
        "two writers racing on one resource must see a 409 ({statuses:?})"
    );
    // Whatever won is stored whole.
    let stored = a.get("/meshes/default/meshtrafficpermissions/hot").json();
    assert!(
        stored["labels"]["writer"]
            .as_str()
            .unwrap()
            .starts_with('w')
    );
}

fn dp_yaml(
    name: &str,
    ip: &str,
    admin: u16,
    service: &str,
    app_port: u16,
    outbound: Option<(u16, &str)>,
) -> String {
    let mut y = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app_port}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: http\n"
    );
    if let Some((port, dest)) = outbound {
        y.push_str(&format!(
            "  outbound:\n  - port: {port}\n    tags:\n      kuma.io/service: {dest}\n"
        ));
    }
    y
}

fn leaders(cps: &[&ControlPlane]) -> Vec<bool> {
    cps.iter()
        .map(|cp| {
            http("GET", &cp.addrs.api(), "/", None, &[])
                .ok()
                .map(|r| r.json()["leader"] == true)
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn replicas_share_proxies_elect_one_leader_and_survive_a_kill() {
    let Some(db) = Database::create("replicas_share_proxies_elect_one_leader_and_survive_a_kill")
    else {
        return;
    };
    assert!(db.migrate().status.success());
    let a = db.start_cp();
    let b = db.start_cp();
    // Exactly one leader.
    wait_for("one leader", Duration::from_secs(10), || {
        let l = leaders(&[&a, &b]);
        (l.iter().filter(|x| **x).count() == 1).then_some(())
    });
    // /ready and kumactl say which replica leads.
    let ready: Vec<String> = [&a, &b]
        .iter()
        .map(|cp| {
            http(
                "GET",
                &format!("127.0.0.1:{}", cp.addrs.diagnostics),
                "/ready",
                None,
                &[],
            )
            .unwrap()
            .body
        })
        .collect();
    assert!(
        ready.contains(&"OK: leader".to_string()) && ready.contains(&"OK: follower".to_string()),
        "{ready:?}"
    );
    let versions = [
        Kumactl::for_cp(&a).ok(&["version"]),
        Kumactl::for_cp(&b).ok(&["version"]),
    ]
    .join("\n");
    assert!(
        versions.contains(", leader") && versions.contains(", follower"),
        "{versions}"
    );
    // Trust both replicas' DP-server certificates.
    let files = tempfile::tempdir().unwrap();
    let ca = files.path().join("cps.pem");
    let pem = [a.dp_ca_file(), b.dp_ca_file()]
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<String>();
    std::fs::write(&ca, pem).unwrap();
    // check-in-api on A only; flight-control on B first, A as fallback.
    let checkin_app_port = aerie_e2e::free_port("127.0.0.1");
    let fc_app_port = aerie_e2e::free_port("127.0.0.1");
    let _apps = [
        aerie_e2e::start_app(
            "check-in-api",
            &format!("127.0.0.1:{checkin_app_port}"),
            false,
        ),
        aerie_e2e::start_app("flight-control", &format!("127.0.0.1:{fc_app_port}"), false),
    ];
    let (admin1, admin2, out) = (
        aerie_e2e::free_port("127.0.0.1"),
        aerie_e2e::free_port("127.0.0.1"),
        aerie_e2e::free_port("127.0.0.1"),
    );
    let checkin_yaml = dp_yaml(
        "check-in-api-1",
        &aerie_e2e::loopback_ip(),
        admin1,
        "check-in-api-blu",
        checkin_app_port,
        None,
    );
    let fc_yaml = dp_yaml(
        "flight-control-1",
        &aerie_e2e::loopback_ip(),
        admin2,
        "flight-control-blu",
        fc_app_port,
        Some((out, "check-in-api-blu")),
    );
    let mut checkin = aerie_e2e::Dataplane::start_against(
        &a.dp_address(),
        &ca,
        "check-in-api-1",
        &checkin_yaml,
        admin1,
        &a.dataplane_token("default", "check-in-api-1"),
    );
    let both = format!("{},{}", b.dp_address(), a.dp_address());
    let mut fc = aerie_e2e::Dataplane::start_against(
        &both,
        &ca,
        "flight-control-1",
        &fc_yaml,
        admin2,
        &b.dataplane_token("default", "flight-control-1"),
    );
    checkin.wait_ready();
    fc.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    let call = || {
        http("GET", &outbound, "/", None, &[])
            .map(|r| r.status)
            .unwrap_or(0)
    };
    // flight-control (on B) reaches check-in-api (on A): endpoints cross replicas.
    wait_for(
        "flight-control reaches check-in-api across replicas",
        Duration::from_secs(15),
        || (call() == 200).then_some(()),
    );
    // mTLS and a deny-all through B's API reach the check-in proxy on A within a second or so.
    let mtls = r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"builtin","backends":[{"name":"builtin","type":"builtin"}]}}"#;
    b.apply_json("/meshes/default", mtls);
    wait_for(
        "deny through B enforced by the proxy on A",
        Duration::from_secs(15),
        || (call() == 403).then_some(()),
    );
    b.apply_json(
        "/meshes/default/meshtrafficpermissions/allow-fc",
        &MTP.replace("NAME", "allow-fc"),
    );
    wait_for("allow through B", Duration::from_secs(15), || {
        (call() == 200).then_some(())
    });
    // Kill B, which flight-control is connected to (and which may lead). Traffic keeps
    // flowing, flight-control moves to A, and A leads.
    drop(b);
    for _ in 0..50 {
        assert_eq!(
            call(),
            200,
            "traffic must not fail while the proxy moves to another replica"
        );
    }
    wait_for("A leads", Duration::from_secs(15), || {
        (leaders(&[&a]) == [true]).then_some(())
    });
    wait_for(
        "flight-control connected to A",
        Duration::from_secs(20),
        || {
            a.dataplane_overview("default", "flight-control-1")
                .filter(|o| o["dataplaneInsight"]["subscriptions"][0]["connectTime"].is_string())
        },
    );
    // A change through A now reaches flight-control too (its outbound is served from A).
    let r = http(
        "DELETE",
        &a.addrs.api(),
        "/meshes/default/meshtrafficpermissions/allow-fc",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    wait_for(
        "deny after the allow is removed",
        Duration::from_secs(15),
        || (call() == 403).then_some(()),
    );
}

#[test]
fn database_outages_at_start_and_while_running() {
    let Some(db) = Database::create("database_outages_at_start_and_while_running") else {
        return;
    };
    assert!(db.migrate().status.success());
    let relay = aerie_e2e::Relay::new(&format!("{}:{}", db.host, db.port));
    let mut env = db.env();
    env.retain(|(k, _)| k != "KUMA_STORE_POSTGRES_PORT");
    env.push(("KUMA_STORE_POSTGRES_HOST".into(), "127.0.0.1".into()));
    env.push(("KUMA_STORE_POSTGRES_PORT".into(), relay.port.to_string()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Unreachable at start: a clear error, retried, not a crash.
    let mut cp = ControlPlane::start_unready(&pairs);
    wait_for("the retry message", Duration::from_secs(15), || {
        cp.logs()
            .contains("PostgreSQL unreachable; retrying")
            .then_some(())
    });
    relay.up();
    cp.wait_ready();
    // A proxy calling its own service through its outbound (mTLS off: 200).
    let app_port = aerie_e2e::free_port("127.0.0.1");
    let _app = aerie_e2e::start_app("web", &format!("127.0.0.1:{app_port}"), false);
    let (admin, out) = (
        aerie_e2e::free_port("127.0.0.1"),
        aerie_e2e::free_port("127.0.0.1"),
    );
    let yaml = dp_yaml(
        "web-1",
        &aerie_e2e::loopback_ip(),
        admin,
        "web",
        app_port,
        Some((out, "web")),
    );
    let mut dp = aerie_e2e::Dataplane::start(&cp, "web-1", &yaml, admin);
    dp.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    let call = || {
        http("GET", &outbound, "/", None, &[])
            .map(|r| r.status)
            .unwrap_or(0)
    };
    wait_for("traffic", Duration::from_secs(15), || {
        (call() == 200).then_some(())
    });
    // Lost while running: the API answers 503 with a clear message; traffic keeps flowing.
    relay.down();
    let r = wait_for("503 from the API", Duration::from_secs(20), || {
        let r = cp.get("/meshes");
        (r.status == 503).then_some(r)
    });
    assert!(
        r.body.contains("PostgreSQL"),
        "the error names the database: {}",
        r.body
    );
    for _ in 0..20 {
        assert_eq!(
            call(),
            200,
            "proxies keep their config while the database is away"
        );
    }
    // Back: the API answers and a change made now reaches the proxy.
    relay.up();
    wait_for("the API back", Duration::from_secs(20), || {
        (cp.get("/meshes").status == 200).then_some(())
    });
    cp.apply_json("/meshes/default", r#"{"type":"Mesh","name":"default","mtls":{"enabledBackend":"b","backends":[{"name":"b","type":"builtin"}]}}"#);
    wait_for(
        "the change reaches the proxy after the outage",
        Duration::from_secs(20),
        || (call() == 403).then_some(()),
    );
}

#[test]
fn four_writers_two_replicas_lose_nothing() {
    let Some(db) = Database::create("four_writers_two_replicas_lose_nothing") else {
        return;
    };
    assert!(db.migrate().status.success());
    let a = db.start_cp();
    let b = db.start_cp();
    let apis = [a.addrs.api(), b.addrs.api()];
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let apis = apis.clone();
            std::thread::spawn(move || {
                for seq in 0..1000 {
                    let name = format!("w{w}-{}", seq % 50);
                    let body = MTP.replace("NAME", &name).replace(
                        "\"spec\"",
                        &format!("\"labels\":{{\"seq\":\"{seq}\"}},\"spec\""),
                    );
                    let api = &apis[seq % 2];
                    let r = http(
                        "PUT",
                        api,
                        &format!("/meshes/default/meshtrafficpermissions/{name}"),
                        Some(&body),
                        &[],
                    )
                    .unwrap();
                    assert!(
                        r.status == 200 || r.status == 201,
                        "{}: {}",
                        r.status,
                        r.body
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let list = a
        .get("/meshes/default/meshtrafficpermissions?size=1000")
        .json();
    assert_eq!(list["total"], 200, "every resource exactly once");
    for item in list["items"].as_array().unwrap() {
        let name = item["name"].as_str().unwrap();
        let k: usize = name.rsplit('-').next().unwrap().parse().unwrap();
        // The last write of resource k by its writer had seq = 950 + k.
        assert_eq!(
            item["labels"]["seq"],
            format!("{}", 950 + k),
            "{name} has its last version"
        );
    }
}

#[test]
fn postgres_tls_modes() {
    let Some(db) = Database::create("postgres_tls_modes") else {
        return;
    };
    // The local server's certificate (Debian's snakeoil, self-signed: its own CA).
    let server_cert = std::path::Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    let ssl_on = db
        .psql("SHOW ssl")
        .map(|s| s.trim() == "on")
        .unwrap_or(false);
    if !ssl_on || !server_cert.exists() {
        skipped(
            "postgres_tls_modes",
            "the test PostgreSQL has no TLS certificate to verify against",
        );
        return;
    }
    let migrate = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(bin("kuma-cp"));
        cmd.args(["migrate", "up"]);
        for (k, v) in db.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("kuma-cp migrate up")
    };
    let out = migrate(&[("KUMA_STORE_POSTGRES_TLS_MODE", "verifyNone")]);
    assert!(out.status.success(), "verifyNone: {}", text(&out.stderr));
    let out = migrate(&[
        ("KUMA_STORE_POSTGRES_TLS_MODE", "verifyCa"),
        (
            "KUMA_STORE_POSTGRES_TLS_CA_PATH",
            server_cert.to_str().unwrap(),
        ),
    ]);
    assert!(
        out.status.success(),
        "verifyCa with the server's CA: {}",
        text(&out.stderr)
    );
    // A CA that did not sign the server's certificate is refused, with a clear message.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(
        &other,
        aerie_identity::CertificateAuthority::generate("x", Duration::from_secs(60))
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let out = migrate(&[
        ("KUMA_STORE_POSTGRES_TLS_MODE", "verifyCa"),
        ("KUMA_STORE_POSTGRES_TLS_CA_PATH", other.to_str().unwrap()),
    ]);
    assert!(
        !out.status.success(),
        "a foreign CA must not verify the server"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot connect to PostgreSQL") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // verifyFull also checks the name: the snakeoil certificate names this host, not 127.0.0.1.
    let out = migrate(&[
        ("KUMA_STORE_POSTGRES_TLS_MODE", "verifyFull"),
        (
            "KUMA_STORE_POSTGRES_TLS_CA_PATH",
            server_cert.to_str().unwrap(),
        ),
    ]);
    assert!(!out.status.success(), "verifyFull must check the host name");
}
