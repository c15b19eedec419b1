//! MeshHTTPRoute enforced by the caller's real sidecar: check-in-api runs as two instances
//! tagged `version: v1` and `version: v2`, flight-control calls it through its outbound. A
//! 90/10 split over the two subsets holds over 10,000 requests; a header match sends only
//! the matching requests to v2 while the rest, matching no rule, go to the outbound's own
//! service (both instances); an exact path and method match beats a header-only one;
//! header modifiers, a prefix rewrite and a redirect are applied; a mirror copies requests
//! (bodies included, a share of them by `percentage`) to another service without changing
//! the caller's answer; a MeshTimeout and a MeshRetry naming a route apply to that route's
//! requests only (on an outbound addressed by a MeshService `backendRef`, as in Kuma); a
//! route's destination gets its service's MeshHealthCheck: an instance failing it gets no
//! routed traffic until it recovers. The same v1/v2 instances show MeshLoadBalancingStrategy's
//! `localZone.affinityTags`: a caller tagged `version: v2` sends nearly all its requests to
//! the instance sharing that tag.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aerie_e2e::{
    ControlPlane, Dataplane, Kumactl, Process, free_port, http, loopback_ip, start_app_with,
    wait_for,
};
use common::PROPAGATION;

/// check-in-api v1 and v2, and flight-control calling check-in-api-blu.
struct Fixture {
    cp: ControlPlane,
    kumactl: Kumactl,
    _dps: Vec<Dataplane>,
    _apps: Vec<Process>,
    /// flight-control's outbound to check-in-api-blu.
    outbound: String,
    /// The v1 and v2 apps (and the extra ones), directly (their request counters).
    apps: Vec<String>,
}

/// One more instance a test needs: (dataplane and app name, service, app arguments).
type Extra<'a> = (&'a str, &'a str, &'a [&'a str]);

fn dataplane(
    name: &str,
    admin: u16,
    service: &str,
    app_port: u16,
    tags: &str,
    outbounds: &[(u16, &str)],
) -> String {
    let mut y = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app_port}\n    tags:\n      kuma.io/service: {service}\n{tags}",
        loopback_ip()
    );
    if !outbounds.is_empty() {
        y.push_str("  outbound:\n");
        for (port, dest) in outbounds {
            y.push_str(&format!(
                "  - port: {port}\n    tags:\n      kuma.io/service: {dest}\n"
            ));
        }
    }
    y
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(&[])
    }

    fn start_with(extra: &[Extra<'_>]) -> Fixture {
        Fixture::start_full(extra, "")
    }

    /// `caller_tags`: more tags of flight-control's inbound (YAML lines).
    fn start_full(extra: &[Extra<'_>], caller_tags: &str) -> Fixture {
        let cp = ControlPlane::start();
        let kumactl = Kumactl::for_cp(&cp);
        let mut apps = Vec::new();
        let mut dps = Vec::new();
        let mut app_addrs = Vec::new();
        let mut instance = |dp_name: &str, app: &str, service: &str, tags: &str, args: &[&str]| {
            let port = free_port("127.0.0.1");
            apps.push(start_app_with(app, &format!("127.0.0.1:{port}"), args));
            let admin = free_port("127.0.0.1");
            let mut d = Dataplane::start(
                &cp,
                dp_name,
                &dataplane(dp_name, admin, service, port, tags, &[]),
                admin,
            );
            d.wait_ready();
            dps.push(d);
            format!("127.0.0.1:{port}")
        };
        let http_tags = |v: &str| format!("      kuma.io/protocol: http\n      version: {v}\n");
        app_addrs.push(instance(
            "check-in-v1",
            "check-in-v1",
            "check-in-api-blu",
            &http_tags("v1"),
            &[],
        ));
        app_addrs.push(instance(
            "check-in-v2",
            "check-in-v2",
            "check-in-api-blu",
            &http_tags("v2"),
            &[],
        ));
        for (name, service, args) in extra {
            app_addrs.push(instance(
                name,
                name,
                service,
                "      kuma.io/protocol: http\n",
                args,
            ));
        }
        let fc_app = free_port("127.0.0.1");
        apps.push(start_app_with(
            "flight-control",
            &format!("127.0.0.1:{fc_app}"),
            &[],
        ));
        let (out, admin) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
        let outbounds = [(out, "check-in-api-blu")];
        let mut fc = Dataplane::start(
            &cp,
            "flight-control-1",
            &dataplane(
                "flight-control-1",
                admin,
                "flight-control-blu",
                fc_app,
                &format!("      kuma.io/protocol: http\n{caller_tags}"),
                &outbounds,
            ),
            admin,
        );
        fc.wait_ready();
        dps.push(fc);
        let f = Fixture {
            cp,
            kumactl,
            _dps: dps,
            _apps: apps,
            outbound: format!("127.0.0.1:{out}"),
            apps: app_addrs,
        };
        wait_for("both versions answer", PROPAGATION, || {
            let seen: Vec<String> = (0..10)
                .filter_map(|_| answered_by(&f.outbound, &[]))
                .collect();
            (seen.iter().any(|s| s == "check-in-v1") && seen.iter().any(|s| s == "check-in-v2"))
                .then_some(())
        });
        f
    }

    fn apply(&self, yaml: &str) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, yaml).unwrap();
        self.kumactl.ok(&["apply", "-f", f.to_str().unwrap()]);
    }

    /// How many requests an app has served, this one included (its own counter, asked
    /// directly).
    fn served(&self, app: usize) -> u64 {
        http("GET", &self.apps[app], "/count", None, &[])
            .unwrap()
            .json()["requests"]
            .as_u64()
            .unwrap()
    }
}

/// Which app answered a call through the outbound (`None`: not a 200).
fn answered_by(outbound: &str, headers: &[(&str, &str)]) -> Option<String> {
    let r = http("GET", outbound, "/check-in", None, headers).ok()?;
    (r.status == 200).then(|| r.json()["service"].as_str().unwrap_or_default().to_owned())
}

/// A keep-alive HTTP/1.1 client: `n` GETs of `path` on one connection, the body of each
/// (demo-app answers with a Content-Length).
fn keep_alive_gets(addr: &str, path: &str, n: usize) -> Vec<String> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        w.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        out.push(String::from_utf8(body).unwrap());
    }
    out
}

fn route(name: &str, rules: &str) -> String {
    format!(
        "type: MeshHTTPRoute\nname: {name}\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      rules:\n{rules}"
    )
}

fn subset(version: &str, weight: u32) -> String {
    format!(
        "              - kind: MeshServiceSubset\n                name: check-in-api-blu\n                tags:\n                  version: {version}\n                weight: {weight}\n"
    )
}

#[test]
fn a_90_10_split_holds_over_10000_requests() {
    let f = Fixture::start();
    f.apply(&route(
        "split",
        &format!(
            "        - matches:\n            - path:\n                type: PathPrefix\n                value: /\n          default:\n            backendRefs:\n{}{}",
            subset("v1", 90),
            subset("v2", 10)
        ),
    ));
    // In force once round robin's 50/50 is gone.
    wait_for("the split is in force", PROPAGATION, || {
        let bodies = keep_alive_gets(&f.outbound, "/check-in", 200);
        let v2 = bodies.iter().filter(|b| b.contains("check-in-v2")).count();
        (v2 < 50).then_some(())
    });
    let (v1_before, v2_before) = (f.served(0), f.served(1));
    let n = 10_000;
    let bodies = keep_alive_gets(&f.outbound, "/check-in", n);
    let v2 = bodies.iter().filter(|b| b.contains("check-in-v2")).count();
    let v1 = bodies.iter().filter(|b| b.contains("check-in-v1")).count();
    assert_eq!(v1 + v2, n);
    let share = v2 as f64 / n as f64;
    assert!((0.08..=0.12).contains(&share), "v2 got {share}");
    // The instances saw exactly those requests (and the second count request).
    assert_eq!(f.served(0) - v1_before, v1 as u64 + 1);
    assert_eq!(f.served(1) - v2_before, v2 as u64 + 1);
}

#[test]
fn a_header_match_sends_only_matching_requests_to_v2_and_the_rest_to_the_service() {
    let f = Fixture::start();
    f.apply(&route(
        "by-header",
        &format!(
            "        - matches:\n            - headers:\n                - type: Exact\n                  name: x-version\n                  value: v2\n          default:\n            backendRefs:\n{}        - matches:\n            - path:\n                type: Exact\n                value: /only-v1\n              method: GET\n          default:\n            backendRefs:\n{}",
            subset("v2", 1),
            subset("v1", 1)
        ),
    ));
    wait_for("the header route is in force", PROPAGATION, || {
        (0..20)
            .all(|_| {
                answered_by(&f.outbound, &[("x-version", "v2")]).as_deref() == Some("check-in-v2")
            })
            .then_some(())
    });
    // Only matching requests: another value, or none, matches no rule and goes to the
    // outbound's own service, both instances.
    for headers in [&[("x-version", "v1")][..], &[]] {
        let seen: Vec<String> = (0..20)
            .map(|_| answered_by(&f.outbound, headers).unwrap())
            .collect();
        assert!(
            seen.iter().any(|s| s == "check-in-v1"),
            "{headers:?}: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s == "check-in-v2"),
            "{headers:?}: {seen:?}"
        );
    }
    // An exact path and method: only v1; a POST to it matches no rule.
    for _ in 0..10 {
        let r = http("GET", &f.outbound, "/only-v1", None, &[]).unwrap();
        assert_eq!(r.json()["service"], "check-in-v1");
    }
    let posted: Vec<String> = (0..20)
        .map(|_| {
            http("POST", &f.outbound, "/only-v1", Some("x"), &[])
                .unwrap()
                .json()["service"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(posted.iter().any(|s| s == "check-in-v2"), "{posted:?}");
    // The more specific match wins: a path match beats a header-only match.
    for _ in 0..10 {
        let r = http("GET", &f.outbound, "/only-v1", None, &[("x-version", "v2")]).unwrap();
        assert_eq!(r.json()["service"], "check-in-v1");
    }
}

#[test]
fn filters_edit_headers_rewrite_and_redirect() {
    let f = Fixture::start();
    f.apply(&route(
        "filters",
        "        - matches:\n            - path:\n                type: Exact\n                value: /headers\n          default:\n            filters:\n              - type: RequestHeaderModifier\n                requestHeaderModifier:\n                  set:\n                    - name: x-routed\n                      value: yes\n                  remove: [x-drop]\n              - type: ResponseHeaderModifier\n                responseHeaderModifier:\n                  add:\n                    - name: x-from-route\n                      value: filters\n        - matches:\n            - path:\n                type: PathPrefix\n                value: /old\n          default:\n            filters:\n              - type: URLRewrite\n                urlRewrite:\n                  path:\n                    type: ReplacePrefixMatch\n                    replacePrefixMatch: /new\n        - matches:\n            - path:\n                type: PathPrefix\n                value: /moved\n          default:\n            filters:\n              - type: RequestRedirect\n                requestRedirect:\n                  hostname: example.com\n                  statusCode: 301\n",
    ));
    let r = wait_for("the filters are in force", PROPAGATION, || {
        let r = http("GET", &f.outbound, "/headers", None, &[("x-drop", "1")]).ok()?;
        (r.header("x-from-route") == Some("filters")).then_some(r)
    });
    let seen = r.json();
    assert_eq!(seen["x-routed"], "yes", "{seen}");
    assert!(seen.get("x-drop").is_none(), "{seen}");
    let r = http("GET", &f.outbound, "/old/page", None, &[]).unwrap();
    assert_eq!(r.json()["path"], "/new/page");
    let r = http("GET", &f.outbound, "/moved/here?q=1", None, &[]).unwrap();
    assert_eq!(r.status, 301);
    let location = r.header("location").unwrap();
    assert!(
        location.starts_with("http://example.com:") && location.ends_with("/moved/here?q=1"),
        "{location}"
    );
}

fn last_seen(app: &str) -> serde_json::Value {
    http("GET", app, "/last", None, &[]).unwrap().json()
}

/// An app's request count once no more requests are arriving (mirrors are sent after the
/// caller's answer): two reads apart that differ only by the second read itself.
fn settled_count(f: &Fixture, app: usize) -> u64 {
    wait_for("the mirrored requests settle", PROPAGATION, || {
        let a = f.served(app);
        std::thread::sleep(Duration::from_millis(100));
        let b = f.served(app);
        (b == a + 1).then_some(b)
    })
}

fn mirror_route(percentage: &str) -> String {
    route(
        "mirrored",
        &format!(
            "        - matches:\n            - path:\n                type: PathPrefix\n                value: /\n          default:\n            filters:\n              - type: RequestMirror\n                requestMirror:\n                  backendRef:\n                    kind: MeshService\n                    name: check-in-shadow\n{percentage}            backendRefs:\n{}",
            subset("v1", 1)
        ),
    )
}

#[test]
fn a_mirror_copies_requests_without_changing_the_callers_answer() {
    // The mirror target fails every request: its answers must not reach the caller.
    let f = Fixture::start_with(&[(
        "check-in-shadow",
        "check-in-shadow",
        &["--fail-status", "503"],
    )]);
    let shadow = 2;
    f.apply(&mirror_route(""));
    // A body travels to both: the caller gets v1's echo, the mirror saw the same body,
    // with Envoy's `-shadow` host.
    let seen = wait_for("the mirror is in force", PROPAGATION, || {
        let r = http("POST", &f.outbound, "/echo", Some("boarding-pass-17"), &[]).ok()?;
        assert_eq!((r.status, r.body.as_str()), (200, "boarding-pass-17"));
        let seen = last_seen(&f.apps[shadow]);
        (seen["body"] == "boarding-pass-17").then_some(seen)
    });
    assert_eq!(seen["method"], "POST", "{seen}");
    assert_eq!(seen["path"], "/echo", "{seen}");
    let host = seen["host"].as_str().unwrap();
    assert!(host.starts_with("127.0.0.1-shadow:"), "{host}");
    // Every request is copied; every answer is v1's 200.
    let before = settled_count(&f, shadow);
    let n = 300;
    let bodies = keep_alive_gets(&f.outbound, "/check-in", n);
    assert!(bodies.iter().all(|b| b.contains("check-in-v1")));
    // (and the two counting requests of `settled_count`)
    assert_eq!(settled_count(&f, shadow) - before, n as u64 + 2);
    // `percentage: 50`: half of them, within 5 points over 2,000 requests.
    f.apply(&mirror_route("                  percentage: 50\n"));
    wait_for("the 50% mirror is in force", PROPAGATION, || {
        let before = settled_count(&f, shadow);
        keep_alive_gets(&f.outbound, "/check-in", 200);
        let got = settled_count(&f, shadow) - before - 2;
        (got < 160).then_some(())
    });
    let before = settled_count(&f, shadow);
    let n = 2_000;
    let bodies = keep_alive_gets(&f.outbound, "/check-in", n);
    assert!(bodies.iter().all(|b| b.contains("check-in-v1")));
    let mirrored = settled_count(&f, shadow) - before - 2;
    let share = mirrored as f64 / n as f64;
    assert!((0.45..=0.55).contains(&share), "mirrored {mirrored} of {n}");
}

/// A MeshTimeout and a MeshRetry naming a MeshHTTPRoute (`to[].targetRef.kind:
/// MeshHTTPRoute`) apply to the requests that route matches, and only to them: the caller
/// reaches check-in-api through a MeshService `backendRef` outbound (Kuma applies route
/// confs to such outbounds).
#[test]
fn timeouts_and_retries_naming_a_route_apply_to_its_requests_only() {
    let f = Fixture::start();
    f.apply("type: MeshService\nname: check-in-api-blu\nmesh: default\nspec:\n  selector:\n    dataplaneTags:\n      kuma.io/service: check-in-api-blu\n  ports:\n  - port: 9000\n    targetPort: 9000\n    appProtocol: http\n");
    let app = free_port("127.0.0.1");
    let _app = start_app_with("ops", &format!("127.0.0.1:{app}"), &[]);
    let (out, admin) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut ops = Dataplane::start(
        &f.cp,
        "ops-1",
        &format!(
            "type: Dataplane\nmesh: default\nname: ops-1\nnetworking:\n  address: {}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app}\n    tags:\n      kuma.io/service: ops\n      kuma.io/protocol: http\n  outbound:\n  - port: {out}\n    backendRef:\n      kind: MeshService\n      name: check-in-api-blu\n      port: 9000\n",
            loopback_ip()
        ),
        admin,
    );
    ops.wait_ready();
    let outbound = format!("127.0.0.1:{out}");
    let short = [("x-short", "yes")];
    f.apply("type: MeshHTTPRoute\nname: short\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      rules:\n        - matches:\n            - headers:\n                - type: Exact\n                  name: x-short\n                  value: \"yes\"\n          default:\n            backendRefs:\n              - kind: MeshService\n                name: check-in-api-blu\n                port: 9000\n");
    f.apply("type: MeshTimeout\nname: short-route-timeout\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: MeshHTTPRoute\n        name: short\n      default:\n        http:\n          requestTimeout: 500ms\n");
    f.apply("type: MeshRetry\nname: short-route-retry\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: MeshHTTPRoute\n        name: short\n      default:\n        http:\n          numRetries: 1\n          retryOn: [\"409\"]\n          backOff:\n            baseInterval: 5ms\n            maxInterval: 20ms\n");
    // The route's requests: cut at 500 ms.
    wait_for("the route's timeout is in force", PROPAGATION, || {
        let start = std::time::Instant::now();
        let r = http("GET", &outbound, "/delay/3000", None, &short).ok()?;
        let took = start.elapsed();
        (r.status == 504 && took < Duration::from_millis(2500)).then_some(())
    });
    let start = std::time::Instant::now();
    let r = http("GET", &outbound, "/delay/3000", None, &short).unwrap();
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(took >= Duration::from_millis(450), "{took:?}");
    // Other requests keep the outbound's timeout (Kuma's 15 s default).
    let r = http("GET", &outbound, "/delay/1200", None, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The route's requests are retried on 409; the others are not.
    // The route's requests are retried on 409; the others are not. A retry may go to the
    // other instance: count what both served (each count asks each instance once).
    let attempts = |addr: &str, headers: &[(&str, &str)]| {
        let before = f.served(0) + f.served(1);
        let r = http("GET", addr, "/status/409", None, headers).unwrap();
        assert_eq!(r.status, 409, "{}", r.body);
        f.served(0) + f.served(1) - before - 2
    };
    wait_for("the route's retries are in force", PROPAGATION, || {
        (attempts(&outbound, &short) == 2).then_some(())
    });
    assert_eq!(attempts(&outbound, &short), 2);
    assert_eq!(attempts(&outbound, &[]), 1);
    // The legacy outbound (`kuma.io/service` tags) gets no route confs, as in Kuma.
    assert_eq!(attempts(&f.outbound, &short), 1);
    // `_explain` lists the outbound's routes with what the route's own rules enforce.
    let explained = f.cp.get("/meshes/default/dataplanes/ops-1/_explain").json();
    let routes = &explained["outbounds"][0]["meshHTTPRoute"];
    assert_eq!(routes[0]["route"], "short", "{explained}");
    assert_eq!(
        routes[0]["matches"]["headers"][0]["name"], "x-short",
        "{explained}"
    );
    assert_eq!(routes[0]["timeouts"]["requestMs"], 500, "{explained}");
    assert_eq!(
        routes[0]["retry"]["http"]["statusCodes"],
        serde_json::json!([409]),
        "{explained}"
    );
    let legacy =
        f.cp.get("/meshes/default/dataplanes/flight-control-1/_explain")
            .json();
    let routes = &legacy["outbounds"][0]["meshHTTPRoute"];
    assert_eq!(routes[0]["route"], "short", "{legacy}");
    assert!(routes[0].get("timeouts").is_none(), "{legacy}");
    // The legacy outbound gets route confs from policies whose top-level targetRef is the
    // MeshHTTPRoute (Kuma's older form, deprecated there): only for that route's requests.
    f.apply("type: MeshTimeout\nname: short-route-legacy\nmesh: default\nspec:\n  targetRef:\n    kind: MeshHTTPRoute\n    name: short\n  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        http:\n          requestTimeout: 700ms\n");
    wait_for(
        "the top-level route timeout is in force",
        PROPAGATION,
        || {
            let r = http("GET", &f.outbound, "/delay/3000", None, &short).ok()?;
            (r.status == 504).then_some(())
        },
    );
    let start = std::time::Instant::now();
    let r = http("GET", &f.outbound, "/delay/3000", None, &short).unwrap();
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let r = http("GET", &f.outbound, "/delay/1200", None, &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A route sends every request to another service, check-in-extra (two instances); a
/// MeshHealthCheck on check-in-extra applies to the route's destination as to an outbound's
/// own: an instance failing `/health` gets no routed requests until it passes again.
#[test]
fn a_route_destination_gets_its_services_health_check() {
    let f = Fixture::start_with(&[
        ("check-in-x1", "check-in-extra", &[]),
        ("check-in-x2", "check-in-extra", &[]),
    ]);
    let x2 = 3;
    f.apply("type: MeshHealthCheck\nname: extra-health\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-extra\n      default:\n        interval: 1s\n        timeout: 500ms\n        unhealthyThreshold: 2\n        healthyThreshold: 1\n        http:\n          path: /health\n");
    f.apply(&route(
        "to-extra",
        "        - matches:\n            - path:\n                type: PathPrefix\n                value: /\n          default:\n            backendRefs:\n              - kind: MeshService\n                name: check-in-extra\n",
    ));
    let answers = |n: usize| -> Vec<String> {
        keep_alive_gets(&f.outbound, "/check-in", n)
            .iter()
            .map(|b| {
                serde_json::from_str::<serde_json::Value>(b).unwrap()["service"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    wait_for(
        "the route reaches both extra instances",
        PROPAGATION,
        || {
            let seen = answers(12);
            (seen.iter().any(|s| s == "check-in-x1") && seen.iter().any(|s| s == "check-in-x2"))
                .then_some(())
        },
    );
    // x2 fails its health check: within interval x unhealthyThreshold (2 s, and a check
    // in flight) it gets nothing.
    let toggled = http("GET", &f.apps[x2], "/toggle-health", None, &[]).unwrap();
    assert_eq!(toggled.json()["health"], "unhealthy");
    let started = std::time::Instant::now();
    wait_for("x2 is skipped", PROPAGATION, || {
        answers(12).iter().all(|s| s == "check-in-x1").then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(answers(50).iter().all(|s| s == "check-in-x1"));
    // Recovered, it gets traffic again.
    http("GET", &f.apps[x2], "/toggle-health", None, &[]).unwrap();
    wait_for("x2 is back", PROPAGATION, || {
        answers(12).iter().any(|s| s == "check-in-x2").then_some(())
    });
}

/// `localZone.affinityTags: [{key: version}]` for a caller whose inbound carries `version:
/// v2`: the instance sharing the tag is a locality of Kuma's generated weight 9 against 1
/// for the rest, so 90 % of the requests reach it (round robin gave 50 %).
#[test]
fn affinity_tags_keep_requests_on_instances_sharing_the_callers_tag() {
    let f = Fixture::start_full(&[], "      version: v2\n");
    f.apply("type: MeshLoadBalancingStrategy\nname: same-version\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: flight-control-blu\n  to:\n    - targetRef:\n        kind: MeshService\n        name: check-in-api-blu\n      default:\n        localityAwareness:\n          localZone:\n            affinityTags:\n              - key: version\n");
    let v2_share = |n: usize| {
        let bodies = keep_alive_gets(&f.outbound, "/check-in", n);
        bodies.iter().filter(|b| b.contains("check-in-v2")).count() as f64 / n as f64
    };
    wait_for("the affinity is in force", PROPAGATION, || {
        (v2_share(200) > 0.8).then_some(())
    });
    // 90 % within 3 points over 4,000 requests: the other instance keeps its 10 %.
    let share = v2_share(4_000);
    assert!((0.87..=0.93).contains(&share), "v2 got {share}");
    // `_explain` shows the caller's group.
    let explained =
        f.cp.get("/meshes/default/dataplanes/flight-control-1/_explain")
            .json();
    let groups = &explained["outbounds"][0]["meshLoadBalancingStrategy"]["effective"]["locality"]["localGroups"];
    assert_eq!(
        groups,
        &serde_json::json!([{"key": "version", "value": "v2", "weight": 9}]),
        "{explained}"
    );
}
