//! List pagination through the real kuma-cp: `next` links that end, keep the request's
//! scheme, host and parameters, and visit every item exactly once.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aerie_e2e::{ControlPlane, http};
use serde_json::Value;

#[path = "common/tls.rs"]
mod tls;

fn get(cp: &ControlPlane, path: &str) -> Value {
    let r = cp.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

fn mesh(cp: &ControlPlane, name: &str, team: &str) {
    cp.apply_json(
        &format!("/meshes/{name}"),
        &format!(r#"{{"type":"Mesh","name":"{name}","labels":{{"team":"{team}"}}}}"#),
    );
}

/// Follows `next` from `first` (a page already fetched), over `fetch`; the names of every
/// item seen, in order, and how many pages there were. Fails if the walk does not end.
fn walk(first: Value, mut fetch: impl FnMut(&str) -> Value) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut page = first;
    for pages in 1..=100 {
        for item in page["items"].as_array().expect("items") {
            names.push(item["name"].as_str().expect("name").to_string());
        }
        match page["next"].as_str() {
            None => return (names, pages),
            Some(next) => page = fetch(next),
        }
    }
    panic!("following next did not end after 100 pages: {names:?}")
}

/// `http://host:port/path?query` → (`host:port`, `/path?query`).
fn split_url<'a>(url: &'a str, scheme: &str) -> (&'a str, &'a str) {
    let rest = url
        .strip_prefix(&format!("{scheme}://"))
        .unwrap_or_else(|| panic!("{url} does not start with {scheme}://"));
    let slash = rest.find('/').expect("path");
    (&rest[..slash], &rest[slash..])
}

#[test]
fn a_huge_offset_is_an_empty_last_page() {
    let cp = ControlPlane::start();
    for offset in [u64::MAX, u64::MAX - 5] {
        for path in [
            format!("/meshes?offset={offset}&size=10"),
            format!("/meshes/default/meshtrafficpermissions?offset={offset}&size=1000"),
            format!("/meshes/default/dataplanes+insights?offset={offset}"),
        ] {
            let page = get(&cp, &path);
            assert_eq!(page["items"], serde_json::json!([]), "{path}: {page}");
            assert!(page["next"].is_null(), "{path}: {page}");
        }
    }
    let page = get(&cp, "/meshes");
    assert_eq!(page["total"], 1);
    let r = cp.get("/meshes?offset=-1");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["invalid_parameters"][0]["field"], "offset");
}

#[test]
fn following_next_visits_every_item_once_and_ends() {
    let cp = ControlPlane::start();
    for i in 0..24 {
        mesh(
            &cp,
            &format!("m-{i:02}"),
            if i % 3 == 0 { "blue" } else { "red" },
        );
    }
    let api = cp.addrs.api();
    let fetch = |next: &str| {
        let (host, path) = split_url(next, "http");
        assert_eq!(host, api, "next must point at the host the request used");
        let r = http("GET", host, path, None, &[]).expect("GET next");
        assert_eq!(r.status, 200, "{next}: {}", r.body);
        r.json()
    };
    let first = get(&cp, "/meshes?size=7");
    assert_eq!(first["total"], 25);
    let (names, pages) = walk(first, fetch);
    assert_eq!(pages, 4, "25 items in pages of 7");
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(names.len(), 25, "{names:?}");
    assert_eq!(unique.len(), 25, "an item was visited twice: {names:?}");
    assert!(unique.contains("default"));

    // A label filter (and any other parameter) is kept in every next link.
    let first = get(&cp, "/meshes?filter%5Blabels.team%5D=blue&size=3&trace=yes");
    assert_eq!(first["total"], 8, "{first}");
    let next = first["next"].as_str().expect("next").to_string();
    assert!(
        next.contains("filter%5Blabels.team%5D=blue") && next.contains("trace=yes"),
        "{next}"
    );
    let (names, pages) = walk(first, fetch);
    let want: BTreeSet<String> = (0..24)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("m-{i:02}"))
        .collect();
    assert_eq!(pages, 3);
    assert_eq!(names.len(), want.len(), "{names:?}");
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), want);

    // name (contains) filters too.
    let page = get(&cp, "/meshes?name=m-1");
    assert_eq!(page["total"], 10, "{page}");
    // Filters other than exact labels are refused, naming the parameter.
    let r = cp.get("/meshes?filter%5Bspec.x%5D=1");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["invalid_parameters"][0]["field"], "filter[spec.x]");
}

#[test]
fn next_on_the_https_port_is_https() {
    let cp = ControlPlane::start();
    for i in 0..5 {
        mesh(&cp, &format!("s-{i}"), "green");
    }
    let https = format!("{}:{}", cp.addrs.ip, cp.addrs.https);
    let cfg = tls::tls_config(&cp.work_dir.join("tls/api-server.crt"), b"http/1.1");
    let fetch = |path: &str| {
        let (status, body) = tls::https_get(&https, &cp.addrs.ip, &cfg, path).expect("HTTPS");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).expect("JSON")
    };
    let first = fetch("/meshes?size=2");
    let next = first["next"].as_str().expect("next").to_string();
    assert!(
        next.starts_with(&format!("https://{https}/meshes?")),
        "{next}"
    );
    let (names, _) = walk(first, |next| {
        let (host, path) = split_url(next, "https");
        assert_eq!(host, https);
        fetch(path)
    });
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn dataplane_overviews_are_paginated() {
    let cp = ControlPlane::start();
    for i in 0..5 {
        cp.apply_json(
            &format!("/meshes/default/dataplanes/dp-{i}"),
            &format!(
                r#"{{"type":"Dataplane","mesh":"default","name":"dp-{i}","networking":{{"address":"127.0.0.1","inbound":[{{"port":{},"servicePort":1,"tags":{{"kuma.io/service":"svc"}}}}]}}}}"#,
                9000 + i
            ),
        );
    }
    let api = cp.addrs.api();
    let first = get(&cp, "/meshes/default/dataplanes+insights?size=2");
    assert_eq!(first["total"], 5);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let (names, pages) = walk(first, |next| {
        let (host, path) = split_url(next, "http");
        assert_eq!(host, api);
        let r = http("GET", host, path, None, &[]).expect("GET next");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    });
    assert_eq!(pages, 3);
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 5, "{names:?}");
}
