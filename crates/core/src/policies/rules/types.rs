//! The engine's input and output shapes.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::ResourceKind;
use crate::spec::{DataplaneSpec, Tags, TargetRef};

static NO_CONF: Value = Value::Null;
static NO_TARGET_REF: TargetRef = TargetRef {
    kind: None,
    name: None,
    namespace: None,
    labels: None,
    tags: None,
    section_name: None,
    proxy_types: None,
    mesh: None,
};

/// One policy of any kind, as the engine reads it: identity, labels (origin, role, display
/// name, effect), top-level targetRef and its entries, each with its `default` conf as JSON.
#[derive(Debug, Clone)]
pub struct PolicyItem<'a> {
    pub name: &'a str,
    pub labels: &'a Tags,
    /// `None` = the whole mesh (Kuma fills in `kind: Mesh`).
    pub target_ref: Option<&'a TargetRef>,
    pub to: Vec<Entry<'a>>,
    pub from: Vec<Entry<'a>>,
    pub rules: Vec<RuleItem<'a>>,
}

/// A `to[]` or `from[]` entry: whom it is about, and its `default` conf.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub target_ref: &'a TargetRef,
    pub default: &'a Value,
}

impl<'a> Entry<'a> {
    /// Missing parts read as Kuma's zero values: a ref without kind (matches nothing), an
    /// empty conf.
    pub fn new(target_ref: Option<&'a TargetRef>, default: Option<&'a Value>) -> Entry<'a> {
        Entry {
            target_ref: target_ref.unwrap_or(&NO_TARGET_REF),
            default: default.unwrap_or(&NO_CONF),
        }
    }
}

/// A `rules[]` entry: optional `matches` (each a `{spiffeID: {type, value}}` or
/// `{sni: {type, value}}` object, kept as written) and its `default` conf.
#[derive(Debug, Clone, Copy)]
pub struct RuleItem<'a> {
    pub matches: &'a [Value],
    pub default: &'a Value,
}

impl<'a> RuleItem<'a> {
    pub fn new(matches: Option<&'a [Value]>, default: Option<&'a Value>) -> RuleItem<'a> {
        RuleItem {
            matches: matches.unwrap_or_default(),
            default: default.unwrap_or(&NO_CONF),
        }
    }
}

/// What differs between policy kinds, as far as the engine is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Kuma's `IsFromAsRules` (MeshTimeout, MeshCircuitBreaker, MeshRateLimit,
    /// MeshAccessLog): a policy without `rules` contributes its `from[]` entries to the
    /// inbound rules as catch-all rules, their targetRefs ignored.
    pub from_as_rules: bool,
    /// Also match policies labelled `kuma.io/effect: shadow` (inspection only).
    pub include_shadow: bool,
}

/// The Dataplane being resolved.
#[derive(Debug, Clone, Copy)]
pub struct DataplaneView<'a> {
    pub mesh: &'a str,
    pub name: &'a str,
    pub labels: &'a Tags,
    pub spec: &'a DataplaneSpec,
}

/// One entry that contributed to a result: the policy and the entry's position in its
/// `to[]`, `from[]` or `rules[]` (Kuma's `RuleIndex`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// Shared with the index (cheap to clone).
    pub policy: Arc<str>,
    pub index: usize,
}

/// A merged conf and the entries it was merged from, lowest priority first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Merged {
    pub origins: Vec<Origin>,
    /// `None` when no entry applies (the policy kind's defaults hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf: Option<Value>,
}

impl Merged {
    /// The merged conf decoded as the policy kind's conf type.
    pub fn merged<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.conf.clone().map(serde_json::from_value).transpose()
    }

    /// The contributing policies, each once, in the order they were first merged.
    pub fn policies(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for o in &self.origins {
            if !names.contains(&&*o.policy) {
                names.push(&o.policy);
            }
        }
        names
    }
}

/// One inbound rule (Kuma's `inbound.Rule`): a `rules[]` entry (one per `matches` item), or
/// a `from[]` entry of an `IsFromAsRules` kind. Its conf is the entry's own, unmerged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRule {
    /// `None` = catch-all (applies to every caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Value>,
    /// Shared with the index (cheap to clone).
    pub conf: Arc<Value>,
    pub origin: Origin,
}

/// A legacy `from[]` entry (Kuma's `FromRules.Rules` input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FromEntry {
    pub target_ref: Arc<TargetRef>,
    /// The caller tags the entry requires (`Mesh`: none; `MeshService`: `kuma.io/service`;
    /// `MeshSubset`/`MeshServiceSubset`: their tags). `None` for kinds Kuma leaves out of
    /// from-rules (they match no caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Arc<[(String, String)]>>,
    pub conf: Arc<Value>,
    pub origin: Origin,
}

/// What applies to one inbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRules {
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Policies whose top-level targetRef selects this inbound, lowest priority first.
    pub policies: Vec<String>,
    /// Inbound rules, most specific match first, then catch-alls lowest priority first.
    pub rules: Vec<InboundRule>,
    /// The catch-all rules merged (`inbound.MatchesAllIncomingTraffic`): what applies to
    /// every caller.
    pub conf: Merged,
    /// Legacy `from[]` entries, lowest priority first; see [`InboundRules::from_conf`].
    pub from: Vec<FromEntry>,
}

impl InboundRules {
    /// The legacy from-conf for one caller with these tags (its `kuma.io/service` and other
    /// inbound tags): every `from[]` entry whose subset the caller carries, merged in
    /// priority order. This is the answer Kuma's subset rules (`rules.BuildRules` with
    /// negations, `Rules.Compute`) are built to give for that caller.
    pub fn from_conf(&self, caller: &Tags) -> Merged {
        let matching: Vec<&FromEntry> = self
            .from
            .iter()
            .filter(|e| {
                e.subset
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|(k, v)| caller.get(k) == Some(v)))
            })
            .collect();
        Merged {
            origins: matching.iter().map(|e| e.origin.clone()).collect(),
            conf: super::merge::merge_confs(matching.iter().map(|e| &*e.conf)),
        }
    }
}

/// What an outbound is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum OutboundTarget {
    /// A `kuma.io/service` tag: Kuma's legacy outbound, resolved with subset rules.
    Service { name: String },
    /// A `backendRef`: a real resource (and port), resolved with resource rules.
    Resource {
        kind: ResourceKind,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        section: Option<String>,
    },
    /// Neither could be read (no service tag, unknown kind, labels matching nothing).
    Unresolved,
}

/// What applies to one outbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundRules {
    pub port: u32,
    pub target: OutboundTarget,
    #[serde(flatten)]
    pub merged: Merged,
}

/// Everything one policy kind sets on one Dataplane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneRules {
    /// Policies applying to the Dataplane at all, lowest priority first (Kuma's
    /// `DataplanePolicies`).
    pub policies: Vec<String>,
    /// One per `networking.inbound`, in order.
    pub inbounds: Vec<InboundRules>,
    /// One per `networking.outbound`, in order.
    pub outbounds: Vec<OutboundRules>,
}

/// A destination to look resource rules up for: a catalog resource by name, and
/// optionally the section (port name, or port number written out).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}
