//! Which callers an inbound policy entry applies to, in the form a proxy checks once per
//! connection: the caller's verified identity (its SPIFFE IDs `spiffe://<mesh>/<service>`
//! and `kuma://<tag>/<value>` facts) and the TLS server name it asked for.
//!
//! Built from a `rules[]` entry's `matches` item (`spiffeID` Exact/Prefix, `sni` Exact) or
//! from a legacy `from[]` entry's caller subset (the tags the caller must carry: Kuma
//! matches them on the `x-kuma-tags` its callers send; Aerie on the certificate, which
//! carries the same facts and cannot be forged).

use serde::{Deserialize, Serialize};

use super::meshtrafficpermission::PeerIdentity;
use crate::spec::Match;

/// Conditions on a caller, all of which must hold; none = every caller (including callers
/// without an identity: mTLS off, or plaintext in PERMISSIVE mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerMatch {
    /// One of the caller's SPIFFE IDs is exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_exact: Option<String>,
    /// One of the caller's SPIFFE IDs starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_prefix: Option<String>,
    /// The TLS server name the caller asked for is exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The caller's identity carries every one of these tags (`kuma.io/service` included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// What the proxy knows about a caller, fixed for the life of its connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub identity: Option<&'a PeerIdentity>,
    pub sni: Option<&'a str>,
}

impl CallerMatch {
    /// Every caller.
    pub fn any() -> CallerMatch {
        CallerMatch::default()
    }

    pub fn is_any(&self) -> bool {
        *self == CallerMatch::default()
    }

    /// A `rules[]` match as written (`{spiffeID: {type, value}}` or `{sni: ...}`); `None`
    /// for a type the proxy cannot check (validation refuses them).
    pub fn from_rule_match(m: &Match) -> Option<CallerMatch> {
        let mut out = CallerMatch::default();
        if let Some(s) = &m.spiffe_id {
            match s.kind.as_str() {
                "Exact" => out.spiffe_exact = Some(s.value.clone()),
                "Prefix" => out.spiffe_prefix = Some(s.value.clone()),
                _ => return None,
            }
        }
        if let Some(s) = &m.sni {
            match s.kind.as_str() {
                "Exact" => out.sni = Some(s.value.clone()),
                _ => return None,
            }
        }
        Some(out)
    }

    /// A legacy `from[]` subset: the tags the caller must carry.
    pub fn from_tags(tags: &[(String, String)]) -> CallerMatch {
        CallerMatch {
            tags: tags.to_vec(),
            ..CallerMatch::default()
        }
    }

    /// Whether the caller satisfies every condition. Allocation-free.
    pub fn matches(&self, caller: &Caller<'_>) -> bool {
        if let Some(sni) = &self.sni
            && caller.sni != Some(sni.as_str())
        {
            return false;
        }
        let has_id = |f: fn(&str, &str, &str) -> bool, v: &str| {
            caller
                .identity
                .is_some_and(|id| id.services.iter().any(|s| f(v, &id.mesh, s)))
        };
        if let Some(exact) = &self.spiffe_exact
            && !has_id(spiffe_id_is, exact)
        {
            return false;
        }
        if let Some(prefix) = &self.spiffe_prefix
            && !has_id(spiffe_id_starts_with, prefix)
        {
            return false;
        }
        if !self.tags.is_empty() {
            let Some(id) = caller.identity else {
                return false;
            };
            if !self.tags.iter().all(|(k, v)| id.has_tag(k, v)) {
                return false;
            }
        }
        true
    }
}

const SPIFFE_SCHEME: &str = "spiffe://";

/// `value == "spiffe://<mesh>/<service>"`, without building the ID.
fn spiffe_id_is(value: &str, mesh: &str, service: &str) -> bool {
    value
        .strip_prefix(SPIFFE_SCHEME)
        .and_then(|v| v.strip_prefix(mesh))
        .and_then(|v| v.strip_prefix('/'))
        == Some(service)
}

/// `"spiffe://<mesh>/<service>".starts_with(prefix)`, without building the ID.
fn spiffe_id_starts_with(prefix: &str, mesh: &str, service: &str) -> bool {
    let mut rest = prefix;
    for part in [SPIFFE_SCHEME, mesh, "/", service] {
        if rest.len() <= part.len() {
            return part.starts_with(rest);
        }
        match rest.strip_prefix(part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ValueMatch;

    fn spiffe(kind: &str, value: &str) -> CallerMatch {
        CallerMatch::from_rule_match(&Match {
            spiffe_id: Some(ValueMatch {
                kind: kind.into(),
                value: value.into(),
            }),
            sni: None,
        })
        .unwrap_or_else(|| panic!("{kind} is supported"))
    }

    #[test]
    fn spiffe_ids_match_without_being_built() {
        let id = PeerIdentity::new("default", ["flight-control"]);
        let caller = Caller {
            identity: Some(&id),
            sni: None,
        };
        assert!(spiffe("Exact", "spiffe://default/flight-control").matches(&caller));
        assert!(!spiffe("Exact", "spiffe://default/flight-contro").matches(&caller));
        assert!(!spiffe("Exact", "spiffe://default/flight-control2").matches(&caller));
        for p in [
            "",
            "spi",
            "spiffe://",
            "spiffe://def",
            "spiffe://default",
            "spiffe://default/",
            "spiffe://default/flight",
            "spiffe://default/flight-control",
        ] {
            assert!(spiffe("Prefix", p).matches(&caller), "{p}");
        }
        for p in [
            "spiffe://other/",
            "spiffe://default/booking",
            "spiffe://default/flight-control/x",
            "x",
        ] {
            assert!(!spiffe("Prefix", p).matches(&caller), "{p}");
        }
        assert!(
            !spiffe("Prefix", "spiffe://").matches(&Caller::default()),
            "no identity, no SPIFFE ID"
        );
        assert!(CallerMatch::any().matches(&Caller::default()));
    }

    #[test]
    fn tags_and_sni_must_all_hold() {
        let id = PeerIdentity::new("default", ["web"]).with_tag("version", "v2");
        let caller = Caller {
            identity: Some(&id),
            sni: Some("backend.mesh"),
        };
        let tags = |t: &[(&str, &str)]| {
            CallerMatch::from_tags(
                &t.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(tags(&[("kuma.io/service", "web"), ("version", "v2")]).matches(&caller));
        assert!(!tags(&[("kuma.io/service", "web"), ("version", "v1")]).matches(&caller));
        assert!(!tags(&[("kuma.io/service", "web")]).matches(&Caller::default()));
        let sni = CallerMatch {
            sni: Some("backend.mesh".into()),
            ..CallerMatch::default()
        };
        assert!(sni.matches(&caller));
        assert!(!sni.matches(&Caller::default()));
    }
}
