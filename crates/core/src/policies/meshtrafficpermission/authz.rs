//! The per-inbound authorization table the proxy checks on every connection or request.
//!
//! Under "Allow wins" the effective permission is a plain union of grants, so the table is
//! just "who is granted, and how": one optional mesh-wide grant, a map from service name to
//! grant (the common case: `kind: Mesh` and `kind: MeshService` callers), and tag-subset rules
//! filed under the service they require (or, rarely, in a short list when they require none).
//! A check is one string comparison, two map lookups per service in the caller's certificate
//! (usually one) and a scan of the few subset rules for that service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::PeerIdentity;
use super::select::{Action, CallerMatcher};

/// Whether the inbound enforces permissions at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthzMode {
    /// mTLS is off in the mesh: no identities exist, so MeshTrafficPermission does not apply
    /// and everyone is let in (Kuma skips the MTP plugin entirely in that case).
    AllowAll,
    /// mTLS is on: only callers matched by a grant are let in.
    Enforce,
}

/// How a caller was let in, and by which policies (for `kumactl inspect` and access logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// True when only `AllowWithShadowDeny` entries grant this: allowed, but the proxy records
    /// that the caller would be denied once the shadow deny is made real.
    pub shadow_deny: bool,
    /// The policies behind the effective action, as indices into [`InboundAuthz::policies`]
    /// (one name table per inbound keeps tables small and checks allocation-free). When a
    /// plain `Allow` and an `AllowWithShadowDeny` both match, only the `Allow` policies are
    /// listed: they decide.
    pub policies: Vec<u32>,
}

/// A grant to callers that hold all of `services` and all `tags` (MeshSubset-style rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsetRule {
    /// Sorted; may be empty.
    pub services: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub grant: Grant,
}

impl SubsetRule {
    fn matches(&self, peer: &PeerIdentity) -> bool {
        self.services.iter().all(|s| peer.services.contains(s))
            && self.tags.iter().all(|(k, v)| peer.has_tag(k, v))
    }
}

/// The resolved permissions of one Dataplane inbound, in the form the proxy consumes.
///
/// Serialisable so the control plane can ship it to the proxy as is. Lookups use
/// `BTreeMap`s, not hash maps, so the serialised form is deterministic and a deserialised
/// table cannot be "unsorted" in a way that breaks lookups. A check touches only the entries
/// for the caller's own services, plus subset rules that name no service (rare), so its cost
/// does not grow with the number of services granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundAuthz {
    /// The inbound's `port` (the proxy's listener), to tie the table to its listener.
    pub port: u32,
    pub mode: AuthzMode,
    /// Callers must present an identity of this mesh; others never match.
    pub mesh: String,
    /// Names of the policies the grants refer to, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Grant to every identity of the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_in_mesh: Option<Grant>,
    /// Grants by caller service (`spiffe://<mesh>/<service>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Grant>,
    /// Subset rules requiring at least one service, keyed by their first service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_subsets: BTreeMap<String, Vec<SubsetRule>>,
    /// Subset rules requiring tags only, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<SubsetRule>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decision {
    /// Not allowed: HTTP 403 / connection closed.
    Deny,
    /// Allowed only through `AllowWithShadowDeny`: let in, log the would-be denial.
    AllowShadowDeny,
    Allow,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self != Decision::Deny
    }
}

/// A [`Decision`] plus the grant behind it, borrowed from the table (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub decision: Decision,
    /// The deciding grant: a plain one if any matched, else the first shadow one; `None` for
    /// denials and for [`AuthzMode::AllowAll`].
    pub grant: Option<&'a Grant>,
    names: &'a [String],
}

impl<'a> Verdict<'a> {
    /// Names of the policies that let the caller in (none when denied or mTLS is off).
    pub fn policies(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let names = self.names;
        self.grant
            .into_iter()
            .flat_map(|g| g.policies.iter())
            .filter_map(move |&i| names.get(usize::try_from(i).ok()?))
            .map(String::as_str)
    }
}

impl InboundAuthz {
    /// The table for a mesh without mTLS.
    pub fn allow_all(port: u32, mesh: impl Into<String>) -> Self {
        InboundAuthz {
            port,
            mode: AuthzMode::AllowAll,
            mesh: mesh.into(),
            policies: Vec::new(),
            any_in_mesh: None,
            services: BTreeMap::new(),
            service_subsets: BTreeMap::new(),
            subsets: Vec::new(),
        }
    }

    /// Decides whether `peer` may call this inbound.
    pub fn check(&self, peer: &PeerIdentity) -> Decision {
        self.verdict(peer).decision
    }

    /// Like [`InboundAuthz::check`], also naming the policies that decided.
    pub fn verdict<'a>(&'a self, peer: &PeerIdentity) -> Verdict<'a> {
        let verdict = |decision, grant| Verdict {
            decision,
            grant,
            names: &self.policies,
        };
        match self.mode {
            AuthzMode::AllowAll => return verdict(Decision::Allow, None),
            AuthzMode::Enforce if peer.mesh != self.mesh => return verdict(Decision::Deny, None),
            AuthzMode::Enforce => {}
        }
        let by_service = peer.services.iter().flat_map(|s| {
            let subsets = self
                .service_subsets
                .get(s)
                .map(Vec::as_slice)
                .unwrap_or_default();
            self.services
                .get(s)
                .into_iter()
                .chain(subsets.iter().filter(|r| r.matches(peer)).map(|r| &r.grant))
        });
        let matching = self.any_in_mesh.iter().chain(by_service).chain(
            self.subsets
                .iter()
                .filter(|r| r.matches(peer))
                .map(|r| &r.grant),
        );
        let mut shadow = None;
        for grant in matching {
            if !grant.shadow_deny {
                return verdict(Decision::Allow, Some(grant));
            }
            shadow.get_or_insert(grant);
        }
        match shadow {
            Some(grant) => verdict(Decision::AllowShadowDeny, Some(grant)),
            None => verdict(Decision::Deny, None),
        }
    }

    /// The decision for a connection without a client certificate: only a mesh without mTLS
    /// lets it in (in PERMISSIVE mode the proxy does not consult the table for plaintext).
    pub fn check_unauthenticated(&self) -> Decision {
        match self.mode {
            AuthzMode::AllowAll => Decision::Allow,
            AuthzMode::Enforce => Decision::Deny,
        }
    }

    /// The names of the policies behind `grant` (a grant of this table).
    pub fn grant_policies<'a>(&'a self, grant: &'a Grant) -> impl Iterator<Item = &'a str> {
        Verdict {
            decision: Decision::Allow,
            grant: Some(grant),
            names: &self.policies,
        }
        .policies()
    }

    /// Number of grants in the table (0 with mTLS on = nobody gets in).
    pub fn grant_count(&self) -> usize {
        usize::from(self.any_in_mesh.is_some())
            + self.services.len()
            + self.service_subsets.values().map(Vec::len).sum::<usize>()
            + self.subsets.len()
    }
}

/// Who a grant is for, borrowed from the compiled policies. The derived order (mesh-wide,
/// then services, then subsets) is the order grants are assembled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Any,
    Service(&'a str),
    Subset(&'a [String], &'a [(String, String)]),
}

/// One granting `from` entry: `shadow` sorts plain (`false`) entries first in each group.
type Entry<'a> = (Key<'a>, bool, &'a str);

/// One effective grant before policy names become indices: its deciding policies are
/// `entries[start..end]` (no per-grant list is allocated).
struct Draft<'a> {
    key: Key<'a>,
    shadow_deny: bool,
    start: usize,
    end: usize,
}

/// Builds an [`InboundAuthz`] from `(policy, action, caller)` triples, in any order: the
/// output is sorted, so equal inputs give equal tables whatever the order.
///
/// Entries go into one flat vector that is sorted once at the end: far fewer allocations
/// than a map of per-caller lists, which matters when thousands of tables are built.
#[derive(Debug, Default)]
pub(crate) struct AuthzBuilder<'a> {
    entries: Vec<Entry<'a>>,
}

impl<'a> AuthzBuilder<'a> {
    /// Records one `from` entry. Deny entries are ignored: under "Allow wins" a Deny only
    /// means "not allowed unless some Allow matches", which is the default anyway.
    pub fn add(&mut self, policy: &'a str, action: Action, caller: &'a CallerMatcher) {
        let shadow = match action {
            Action::Allow => false,
            Action::AllowWithShadowDeny => true,
            Action::Deny => return,
        };
        let key = match caller {
            CallerMatcher::AnyInMesh => Key::Any,
            CallerMatcher::Service { name } => Key::Service(name),
            CallerMatcher::Subset { services, tags } => Key::Subset(services, tags),
        };
        self.entries.push((key, shadow, policy));
    }

    /// The finished table, with rules another rule makes pointless removed: anything under a
    /// plain mesh-wide grant, shadow grants under a mesh-wide shadow grant, and subsets under a
    /// service grant that is at least as strong. Removing them changes no decision.
    pub fn finish(mut self, port: u32, mesh: &str) -> InboundAuthz {
        self.entries.sort_unstable();
        self.entries.dedup();
        // Group by key; the first entry of a group tells whether any plain Allow matched, and
        // then only the plain entries (which sort first) name the deciding policies.
        let entries = &self.entries;
        let mut drafts: Vec<Draft<'a>> = Vec::new();
        for (i, &(key, shadow, _)) in entries.iter().enumerate() {
            match drafts.last_mut() {
                Some(d) if d.key == key => {
                    if shadow == d.shadow_deny {
                        d.end = i + 1;
                    }
                }
                _ => drafts.push(Draft {
                    key,
                    shadow_deny: shadow,
                    start: i,
                    end: i + 1,
                }),
            }
        }
        let policies_of = |d: &Draft<'_>| {
            let group = entries.get(d.start..d.end).unwrap_or_default();
            group.iter().map(|&(_, _, policy)| policy)
        };

        // Whether a grant is made pointless by one covering it (`covering`: None = no such
        // grant, Some(shadow_deny) otherwise). A plain grant covers everything, a shadow one
        // covers shadow grants only.
        let dominated =
            |covering: Option<bool>, shadow_deny: bool| covering.is_some_and(|c| !c || shadow_deny);
        let any_level = drafts
            .first()
            .filter(|d| d.key == Key::Any)
            .map(|d| d.shadow_deny);
        let service_level = |name: &str, drafts: &[Draft<'_>]| {
            drafts
                .binary_search_by(|d| d.key.cmp(&Key::Service(name)))
                .ok()
                .and_then(|i| drafts.get(i))
                .map(|d| d.shadow_deny)
        };
        let keep: Vec<bool> = drafts
            .iter()
            .map(|d| match d.key {
                Key::Any => true,
                Key::Service(_) => !dominated(any_level, d.shadow_deny),
                Key::Subset(services, _) => {
                    !dominated(any_level, d.shadow_deny)
                        // Looking at service grants before their own pruning is fine: a pruned
                        // one is covered by the mesh-wide grant, which then covers this too.
                        && !services
                            .iter()
                            .any(|s| dominated(service_level(s, &drafts), d.shadow_deny))
                }
            })
            .collect();
        let kept = drafts
            .into_iter()
            .zip(keep)
            .filter_map(|(d, k)| k.then_some(d));
        let drafts: Vec<Draft<'a>> = kept.collect();

        let mut names: Vec<&str> = drafts.iter().flat_map(policies_of).collect();
        names.sort_unstable();
        names.dedup();
        let grant = |d: &Draft<'_>| Grant {
            shadow_deny: d.shadow_deny,
            policies: policies_of(d)
                .filter_map(|n| names.binary_search(&n).ok())
                .filter_map(|i| u32::try_from(i).ok())
                .collect(),
        };

        let mut table = InboundAuthz::allow_all(port, mesh);
        table.mode = AuthzMode::Enforce;
        let mut services = Vec::new();
        for d in &drafts {
            match d.key {
                Key::Any => table.any_in_mesh = Some(grant(d)),
                Key::Service(name) => services.push((name.to_owned(), grant(d))),
                Key::Subset(svcs, tags) => {
                    let rule = SubsetRule {
                        services: svcs.to_vec(),
                        tags: tags.to_vec(),
                        grant: grant(d),
                    };
                    match svcs.first() {
                        Some(first) => table
                            .service_subsets
                            .entry(first.clone())
                            .or_default()
                            .push(rule),
                        None => table.subsets.push(rule),
                    }
                }
            }
        }
        // Already sorted: the map is bulk-built.
        table.services = services.into_iter().collect();
        table.policies = names.into_iter().map(str::to_owned).collect();
        table
    }
}
