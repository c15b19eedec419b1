//! One control-plane round for a mesh, without I/O: computing and JSON-encoding the config
//! halves of N proxies shaped like `bench/controlplane.sh`'s (one inbound `svc-<i % 100>`,
//! one outbound to the next service; one Mesh-wide Allow). Compares, in the same run:
//!
//! - full round, one outbound half per proxy (what a round did before interning),
//! - full round, outbound halves interned per distinct declaration (what it does now),
//! - policy-only round: inbound halves only (a MeshTrafficPermission change).
//!
//! `cargo bench -p aerie-core --bench round` runs N = 10,000; without `--bench` (test runs)
//! a smoke size. Plain `Instant`, best of a few runs.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use aerie_core::Spec;
use aerie_core::format::{parse_yaml_value, resource_from_value};
use aerie_core::policies::meshtrafficpermission::MeshTrafficPermissionSpec;
use aerie_core::policies::meshtrafficpermission::PolicyIndex;
use aerie_core::proxy_config::{MeshView, ProxyConfig};
use aerie_core::spec::{DataplaneSpec, Tags};

fn parse(yaml: &str) -> Spec {
    resource_from_value(&parse_yaml_value(yaml).expect("yaml"))
        .expect("resource")
        .spec
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

fn encode(cfg: &ProxyConfig) -> Vec<u8> {
    serde_json::to_vec(cfg).expect("encode")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, runs) = if full { (10_000, 5) } else { (300, 1) };
    let Spec::Mesh(mesh) = parse(
        "type: Mesh\nname: default\nmtls:\n  backends:\n  - name: ca-1\n    type: builtin\n  enabledBackend: ca-1\n",
    ) else {
        unreachable!()
    };
    let Spec::MeshTrafficPermission(allow) = parse(
        "type: MeshTrafficPermission\nname: allow\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
    ) else {
        unreachable!()
    };
    let dps: Vec<(String, DataplaneSpec)> = (0..n)
        .map(|i| {
            let yaml = format!(
                "type: Dataplane\nname: bench-{i}\nmesh: default\nnetworking:\n  address: 127.{}.{}.{}\n  inbound:\n  - port: 9000\n    tags: {{kuma.io/service: svc-{}}}\n  outbound:\n  - port: 10001\n    tags: {{kuma.io/service: svc-{}}}\n",
                1 + i / 65536 % 250,
                i / 256 % 256,
                i % 256,
                i % 100,
                (i + 1) % 100
            );
            let Spec::Dataplane(d) = parse(&yaml) else {
                unreachable!()
            };
            (format!("bench-{i}"), d)
        })
        .collect();
    let refs: Vec<(&str, &DataplaneSpec)> = dps.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let policies = vec![("allow".to_string(), &allow as &MeshTrafficPermissionSpec)];
    let index = PolicyIndex::new(&policies);
    let labels = Tags::new();

    let (t_view, view) = best_of(runs, || {
        MeshView::new("default", &mesh, &index, &refs, &|_| true)
    });
    let (t_per_proxy, bytes_a) = best_of(runs, || {
        let mut total = 0;
        for (name, dp) in &refs {
            let mut cfg = view.proxy_config(name, &labels, dp);
            let outbounds = std::mem::take(&mut cfg.outbounds);
            total += encode(&cfg).len();
            total += encode(&ProxyConfig {
                outbounds,
                inbounds: Vec::new(),
                ..cfg
            })
            .len();
        }
        black_box(total)
    });
    let (t_interned, bytes_b) = best_of(runs, || {
        let mut total = 0;
        let mut interned: HashMap<Vec<u8>, std::sync::Arc<Vec<u8>>> = HashMap::new();
        for (name, dp) in &refs {
            total += encode(&view.inbound_config(name, &labels, dp)).len();
            let key =
                serde_json::to_vec(&dp.networking.as_ref().expect("net").outbound).expect("key");
            let half = interned
                .entry(key)
                .or_insert_with(|| std::sync::Arc::new(encode(&view.outbound_config(dp))));
            total += half.len();
        }
        black_box((total, interned.len()))
    });
    let policies_only = MeshView::for_policies("default", &mesh, &index);
    let (t_policy, _) = best_of(runs, || {
        let mut total = 0;
        for (name, dp) in &refs {
            total += encode(&policies_only.inbound_config(name, &labels, dp)).len();
        }
        black_box(total)
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("control-plane round, N = {n} proxies, 100 services, best of {runs}:");
    println!(
        "  endpoint map (MeshView::new)               {:>8.1} ms",
        ms(t_view)
    );
    println!(
        "  full round, one outbound half per proxy     {:>8.1} ms  ({} bytes encoded)",
        ms(t_per_proxy),
        bytes_a
    );
    println!(
        "  full round, outbound halves interned        {:>8.1} ms  ({} distinct outbound halves)",
        ms(t_interned),
        bytes_b.1
    );
    println!(
        "  policy-only round (inbound halves only)     {:>8.1} ms",
        ms(t_policy)
    );
    println!(
        "  ratios: interned / per-proxy {:.2}x, policy-only / per-proxy {:.2}x",
        ms(t_interned) / ms(t_per_proxy),
        ms(t_policy) / ms(t_per_proxy)
    );
}
