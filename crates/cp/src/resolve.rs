//! Host names in Dataplanes and ZoneIngresses, resolved by the control plane.
//!
//! Kuma Universal accepts a host name as a Dataplane's `networking.address` and resolves it
//! (caching each answer for `general.dnsCacheTTL`). Proxies only ever receive IP addresses:
//! before a round of configs is computed, every name is replaced by the address it resolves
//! to. A name that does not resolve, or resolves only to addresses no proxy may dial
//! ([`aerie_core::net::endpoint_refusal`]) or to loopback (a name is declared by whoever holds
//! a workload token and points wherever its DNS record says; loopback would mean the dialling
//! proxy's own host), is left as it is: the config builder then leaves that endpoint out, and
//! the problem is reported on the Dataplane (`kumactl inspect dataplane NAME --type=config`).
//!
//! Answers are cached; a background task re-resolves the cached names every TTL and marks
//! the meshes using a name dirty when its answer changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerie_core::net::{endpoint_refusal, is_loopback};
use aerie_core::spec::{DataplaneSpec, ZoneIngressSpec};
use tokio::time::Instant;

/// Longest wait for one lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a name resolved to: an address proxies may dial, or why not.
pub type Answer = Result<IpAddr, String>;

struct Entry {
    answer: Answer,
    at: Instant,
    /// Meshes whose Dataplanes use the name ("" for zone ingresses).
    meshes: BTreeSet<String>,
}

/// The control plane's name cache.
pub struct Resolver {
    ttl: Duration,
    cache: Mutex<HashMap<String, Entry>>,
}

impl Resolver {
    pub fn new(ttl: Duration) -> Resolver {
        Resolver {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers for `names` (used by `mesh`), from the cache while fresh.
    pub async fn resolve(&self, mesh: &str, names: BTreeSet<String>) -> HashMap<String, Answer> {
        let mut out = HashMap::with_capacity(names.len());
        let now = Instant::now();
        for name in names {
            let cached = {
                let mut cache = self.lock();
                cache.get_mut(&name).and_then(|e| {
                    e.meshes.insert(mesh.to_string());
                    (now.duration_since(e.at) < self.ttl).then(|| e.answer.clone())
                })
            };
            let answer = match cached {
                Some(a) => a,
                None => {
                    let answer = lookup(&name).await;
                    let mut cache = self.lock();
                    let entry = cache.entry(name.clone()).or_insert_with(|| Entry {
                        answer: answer.clone(),
                        at: now,
                        meshes: BTreeSet::new(),
                    });
                    entry.answer = answer.clone();
                    entry.at = Instant::now();
                    entry.meshes.insert(mesh.to_string());
                    answer
                }
            };
            out.insert(name, answer);
        }
        out
    }

    /// Re-resolves every cached name each TTL; calls `dirty` with each mesh using a name
    /// whose answer changed. Runs until the process ends.
    pub async fn refresh(self: Arc<Self>, dirty: impl Fn(&str)) {
        let mut tick = tokio::time::interval(self.ttl);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let names: Vec<String> = self.lock().keys().cloned().collect();
            for name in names {
                let answer = lookup(&name).await;
                let changed = {
                    let mut cache = self.lock();
                    match cache.get_mut(&name) {
                        Some(e) => {
                            let changed = e.answer != answer;
                            e.answer = answer;
                            e.at = Instant::now();
                            changed.then(|| e.meshes.clone())
                        }
                        None => None,
                    }
                };
                for mesh in changed.into_iter().flatten() {
                    tracing::info!(
                        name,
                        mesh,
                        "a Dataplane's host name resolves differently now"
                    );
                    dirty(&mesh);
                }
            }
        }
    }
}

async fn lookup(name: &str) -> Answer {
    let found = match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, 0))).await
    {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(format!("\"{name}\" does not resolve: {e}")),
        Err(_) => {
            return Err(format!(
                "\"{name}\" did not resolve within {LOOKUP_TIMEOUT:?}"
            ));
        }
    };
    pick(name, &found)
}

/// The first address proxies may dial, IPv4 first (as Kuma prefers).
fn pick(name: &str, found: &[IpAddr]) -> Answer {
    let usable = |ip: &&IpAddr| endpoint_refusal(**ip).is_none() && !is_loopback(**ip);
    found
        .iter()
        .filter(|ip| ip.is_ipv4())
        .find(usable)
        .or_else(|| found.iter().find(usable))
        .copied()
        .ok_or_else(|| {
            let list: Vec<String> = found.iter().map(IpAddr::to_string).collect();
            format!(
                "\"{name}\" resolves to no address other proxies may dial ({}): loopback, unspecified, multicast and link-local addresses are never used for a host name",
                list.join(", ")
            )
        })
}

fn is_name(address: &str) -> bool {
    !address.is_empty() && address.parse::<IpAddr>().is_err()
}

/// The host names a Dataplane declares.
pub fn dataplane_names(spec: &DataplaneSpec, into: &mut BTreeSet<String>) {
    let Some(net) = &spec.networking else {
        return;
    };
    let addresses = std::iter::once(&net.address)
        .chain(net.advertised_address.iter())
        .chain(net.inbound.iter().filter_map(|i| i.address.as_ref()));
    into.extend(addresses.filter(|a| is_name(a)).cloned());
}

/// The host names a ZoneIngress declares.
pub fn ingress_names(spec: &ZoneIngressSpec, into: &mut BTreeSet<String>) {
    let net = &spec.networking;
    let addresses = std::iter::once(&net.address).chain(net.advertised_address.iter());
    into.extend(addresses.filter(|a| is_name(a)).cloned());
}

/// Replaces a Dataplane's resolved names by their addresses; returns what could not be
/// resolved ("<field>: <why>"), the unresolved names staying in place.
pub fn substitute_dataplane(
    spec: &mut DataplaneSpec,
    answers: &HashMap<String, Answer>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(net) = &mut spec.networking else {
        return problems;
    };
    substitute_host(
        &mut net.address,
        &mut net.advertised_address,
        answers,
        &mut problems,
    );
    for (i, inbound) in net.inbound.iter_mut().enumerate() {
        if let Some(a) = &mut inbound.address {
            let field = format!("networking.inbound[{i}].address");
            substitute(a, &field, answers, &mut problems);
        }
    }
    problems
}

/// Replaces a ZoneIngress's resolved names by their addresses; returns what could not be
/// resolved.
pub fn substitute_ingress(
    spec: &mut ZoneIngressSpec,
    answers: &HashMap<String, Answer>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let net = &mut spec.networking;
    substitute_host(
        &mut net.address,
        &mut net.advertised_address,
        answers,
        &mut problems,
    );
    problems
}

/// `networking.address` and `networking.advertisedAddress`, which Dataplanes and
/// ZoneIngresses share.
fn substitute_host(
    address: &mut String,
    advertised: &mut Option<String>,
    answers: &HashMap<String, Answer>,
    problems: &mut Vec<String>,
) {
    substitute(address, "networking.address", answers, problems);
    if let Some(a) = advertised {
        substitute(a, "networking.advertisedAddress", answers, problems);
    }
}

fn substitute(
    address: &mut String,
    field: &str,
    answers: &HashMap<String, Answer>,
    problems: &mut Vec<String>,
) {
    match answers.get(address.as_str()) {
        Some(Ok(ip)) => *address = ip.to_string(),
        Some(Err(why)) => problems.push(format!("{field}: {why}")),
        None => {}
    }
}

/// Problems found in the last round, per (mesh, Dataplane name), for inspection.
#[derive(Default)]
pub struct Problems(Mutex<BTreeMap<(String, String), Vec<String>>>);

impl Problems {
    /// Replaces a mesh's problems with those of this round, logging the new ones.
    pub fn set_mesh(&self, mesh: &str, found: BTreeMap<String, Vec<String>>) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut before: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        all.retain(|k, v| {
            if k.0 == mesh {
                before.insert(k.clone(), std::mem::take(v));
                false
            } else {
                true
            }
        });
        for (name, problems) in found {
            if problems.is_empty() {
                continue;
            }
            let key = (mesh.to_string(), name);
            if before.get(&key) != Some(&problems) {
                tracing::warn!(mesh, dataplane = %key.1, ?problems, "a Dataplane's address cannot be used: it is left out of other proxies' endpoints");
            }
            all.insert(key, problems);
        }
    }

    pub fn get(&self, mesh: &str, name: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(mesh.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_name_becomes_the_first_address_proxies_may_dial() {
        assert_eq!(pick("a", &[ip("::2"), ip("10.0.0.1")]), Ok(ip("10.0.0.1")));
        assert_eq!(pick("a", &[ip("127.0.0.1"), ip("::2")]), Ok(ip("::2")));
        for only_bad in [
            vec![ip("127.0.0.1"), ip("::1")],
            vec![ip("169.254.169.254")],
            vec![],
        ] {
            let err = pick("metadata.internal", &only_bad).unwrap_err();
            assert!(err.contains("metadata.internal"), "{err}");
        }
    }

    #[tokio::test]
    async fn localhost_is_never_used_and_unknown_names_are_reported() {
        let r = Resolver::new(Duration::from_secs(60));
        let names: BTreeSet<String> = [
            "localhost".to_string(),
            "does-not-exist.invalid".to_string(),
        ]
        .into_iter()
        .collect();
        let answers = r.resolve("default", names).await;
        assert!(answers["localhost"].is_err(), "{:?}", answers["localhost"]);
        assert!(answers["does-not-exist.invalid"].is_err());
    }

    #[test]
    fn substitution_replaces_resolved_names_and_reports_the_rest() {
        let yaml = "type: Dataplane\nname: dp\nmesh: default\nnetworking:\n  address: api.internal\n  inbound:\n  - port: 9000\n    address: gone.internal\n    tags:\n      kuma.io/service: web\n";
        let r = aerie_core::format::resource_from_value(
            &aerie_core::format::parse_yaml_value(yaml).unwrap(),
        )
        .unwrap();
        let aerie_core::Spec::Dataplane(mut spec) = r.spec else {
            unreachable!()
        };
        let mut names = BTreeSet::new();
        dataplane_names(&spec, &mut names);
        assert_eq!(names.len(), 2);
        let answers: HashMap<String, Answer> = [
            ("api.internal".to_string(), Ok(ip("10.1.2.3"))),
            ("gone.internal".to_string(), Err("nope".to_string())),
        ]
        .into_iter()
        .collect();
        let problems = substitute_dataplane(&mut spec, &answers);
        let net = spec.networking.as_ref().unwrap();
        assert_eq!(net.address, "10.1.2.3");
        assert_eq!(net.inbound[0].address.as_deref(), Some("gone.internal"));
        assert_eq!(problems, ["networking.inbound[0].address: nope"]);
    }
}
