//! What the new-style policies share, as Kuma keeps it in `api/common/v1alpha1`,
//! `pkg/core/validators` and `pkg/core/resources/apis/mesh` (`ValidateTargetRef`):
//!
//! - [`GoDuration`] (from [`crate::duration`]): a duration field (Kubernetes'
//!   `metav1.Duration`, Go syntax), keeping the text it was written as;
//! - [`IntOrString`] and [`Decimal`]: number fields that take `1900` or `"1.9"`;
//! - [`HeaderMatch`]: an HTTP header condition; [`HeaderModifier`]: headers to set or add;
//! - [`PolicyRole`]: the `kuma.io/policy-role` label some validators depend on;
//! - [`DefaultPolicyEnv`] / [`DefaultPolicy`]: names and labels of the policies Kuma creates
//!   with every mesh;
//! - the full target-reference check with Kuma's options (`validate_target_ref`).

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ValidationError;
use crate::multizone::{ORIGIN_LABEL, ORIGIN_ZONE, ZONE_LABEL};
use crate::spec::{MESH_LABEL, Tags, TargetRef};

pub use crate::duration::GoDuration;

/// Kubernetes' `IntOrString`: an integer (32-bit) or a string, each kept in its own form.
/// Kuma reads both as a decimal number ([`IntOrString::decimal`]); an unquoted fraction
/// (`1.9`) is refused as it is by Kuma, which wants `"1.9"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl IntOrString {
    /// The value as a decimal (Kuma's `NewDecimalFromIntOrString`); `None` when the string
    /// is not a number.
    pub fn decimal(&self) -> Option<Decimal> {
        match self {
            Self::Int(i) => Some(Decimal::from_int(i64::from(*i))),
            Self::String(s) => Decimal::parse(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(i) => s.serialize_i32(*i),
            Self::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IntOrStringVisitor;
        impl Visitor<'_> for IntOrStringVisitor {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-bit integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(IntOrStringVisitor)
    }
}

/// An exact decimal number: `digits × 10^exponent`, with a sign. Only what the validators
/// need (sign, zero, comparison with an integer), without rounding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    /// Significant digits without leading zeros; empty for zero.
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// An integer.
    pub fn from_int(v: i64) -> Self {
        Self::from_parts(v < 0, v.unsigned_abs().to_string(), 0)
    }

    /// Reads the strings Kuma's decimal library (`shopspring/decimal` `NewFromString`) takes:
    /// an optional sign, digits with at most one `.` (`1.9`, `-.5`, `5.`), and an optional
    /// exponent (`1e3`, `2.5E-2`). No spaces, no `_`, no `NaN`/`Inf`.
    pub fn parse(s: &str) -> Option<Self> {
        let (mantissa, mut exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = s[i + 1..].parse().ok()?;
                (&s[..i], i64::from(exp))
            }
            None => (s, 0),
        };
        let (whole, fraction) = match mantissa.split_once('.') {
            Some((w, f)) if !f.contains('.') => (w, f),
            Some(_) => return None,
            None => (mantissa, ""),
        };
        let joined = format!("{whole}{fraction}");
        let (negative, digits) = match joined.as_bytes().first() {
            Some(b'-') => (true, &joined[1..]),
            Some(b'+') => (false, &joined[1..]),
            _ => (false, joined.as_str()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        exponent -= i64::try_from(fraction.len()).ok()?;
        if i32::try_from(exponent).is_err() {
            return None;
        }
        Some(Self::from_parts(negative, digits.to_string(), exponent))
    }

    fn from_parts(negative: bool, digits: String, exponent: i64) -> Self {
        let digits = digits.trim_start_matches('0').to_string();
        Self {
            negative: negative && !digits.is_empty(),
            digits,
            exponent,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The nearest `f64` (what Kuma's plugins hand Envoy: `decimal.Float64()`).
    pub fn to_f64(&self) -> f64 {
        if self.digits.is_empty() {
            return 0.0;
        }
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}e{}", self.digits, self.exponent)
            .parse()
            .unwrap_or(0.0)
    }

    /// Strictly below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The integer part of `self × 10^shift`, truncated toward zero (shopspring's
    /// `Mul(10^shift).IntPart()`, as Kuma turns `standardDeviationFactor` into Envoy's
    /// thousandths); `None` when negative or beyond `u64`.
    pub fn scaled_int_part(&self, shift: i64) -> Option<u64> {
        if self.negative {
            return None;
        }
        if self.is_zero() {
            return Some(0);
        }
        let exponent = self.exponent.checked_add(shift)?;
        let len = i64::try_from(self.digits.len()).ok()?;
        let int_len = len.checked_add(exponent)?;
        // More than 20 integer digits is beyond any u64.
        if int_len > 20 {
            return None;
        }
        if int_len <= 0 {
            return Some(0);
        }
        if exponent >= 0 {
            let mut v: u64 = self.digits.parse().ok()?;
            for _ in 0..exponent {
                v = v.checked_mul(10)?;
            }
            Some(v)
        } else {
            let keep = usize::try_from(int_len).ok()?;
            self.digits.get(..keep)?.parse().ok()
        }
    }

    /// Compares with an integer, exactly.
    pub fn cmp_int(&self, n: i64) -> Ordering {
        match (self.negative, n < 0) {
            (false, true) => Ordering::Greater,
            (true, false) => {
                if self.is_zero() && n == 0 {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }
            }
            (false, false) => self.cmp_magnitude(n.unsigned_abs()),
            (true, true) => self.cmp_magnitude(n.unsigned_abs()).reverse(),
        }
    }

    /// Compares `|self|` with `n`.
    fn cmp_magnitude(&self, n: u64) -> Ordering {
        if self.is_zero() {
            return 0.cmp(&n);
        }
        let len = i64::try_from(self.digits.len()).unwrap_or(i64::MAX);
        let int_len = len.saturating_add(self.exponent);
        // More than 20 integer digits is beyond any u64.
        if int_len > 20 {
            return Ordering::Greater;
        }
        let (int_part, fraction_nonzero) = if self.exponent >= 0 {
            let zeros = "0".repeat(usize::try_from(self.exponent).unwrap_or(0));
            (format!("{}{zeros}", self.digits), false)
        } else if int_len <= 0 {
            (String::new(), true)
        } else {
            let split = usize::try_from(int_len).unwrap_or(0);
            let (i, f) = self.digits.split_at(split);
            (i.to_string(), f.bytes().any(|b| b != b'0'))
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            // At most 20 digits: always fits.
            int_part.parse().unwrap_or(u128::MAX)
        };
        match int_value.cmp(&u128::from(n)) {
            Ordering::Equal if fraction_nonzero => Ordering::Greater,
            other => other,
        }
    }
}

/// How an HTTP header is matched (`api/common/v1alpha1` `HeaderMatch`). `type` is
/// `Exact` (the default), `Present`, `RegularExpression`, `Absent` or `Prefix`; like Kuma's
/// validators, the policy validators here do not check it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A route's destination (`api/common/v1alpha1` `BackendRef`): a target reference with a
/// `weight` (Kuma's default: 1) and a `port` (for real MeshServices and
/// MeshMultiZoneServices). The reference's fields are spelled out rather than flattened, so
/// an unknown field is still refused by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::spec::scalar_tags"
    )]
    pub labels: Option<Tags>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::spec::scalar_tags"
    )]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl BackendRef {
    /// The reference part.
    pub fn target_ref(&self) -> TargetRef {
        TargetRef {
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            tags: self.tags.clone(),
            section_name: self.section_name.clone(),
            proxy_types: self.proxy_types.clone(),
            mesh: self.mesh.clone(),
        }
    }

    /// The weight among a rule's backends (Kuma's default: 1).
    pub fn weight(&self) -> u64 {
        self.weight.unwrap_or(1)
    }
}

/// Checks a policy's top-level `targetRef` by the policy's role, as Kuma's per-policy
/// `validateTop` does: a system policy may use `system_kinds` (and select MeshGateway
/// listeners by tags), any other role only `kinds`. Paths start with `targetRef`.
pub fn validate_top_level(
    target_ref: Option<&TargetRef>,
    role: &PolicyRole,
    system_kinds: &[&str],
    kinds: &[&str],
) -> ValidationError {
    validate_top_level_inbound(target_ref, role, system_kinds, kinds, false)
}

/// [`validate_top_level`] for a policy that may configure inbound traffic: with
/// `inbound_policy` (it has `from` or `rules` entries) a Dataplane ref may name an inbound
/// by `sectionName`.
pub fn validate_top_level_inbound(
    target_ref: Option<&TargetRef>,
    role: &PolicyRole,
    system_kinds: &[&str],
    kinds: &[&str],
    inbound_policy: bool,
) -> ValidationError {
    let mut errs = ValidationError::new();
    let Some(target_ref) = target_ref else {
        return errs;
    };
    let (kinds, opts) = match role {
        PolicyRole::System => (
            system_kinds,
            RefOpts {
                inbound_policy,
                gateway_listener_tags_allowed: true,
                ..RefOpts::default()
            },
        ),
        _ => (
            kinds,
            RefOpts {
                inbound_policy,
                ..RefOpts::default()
            },
        ),
    };
    errs.add_prefixed("targetRef", validate_target_ref(target_ref, kinds, opts));
    errs
}

/// A `from` or `to` entry for [`validate_gateway_scoped`]: its reference and the checks of
/// its `default` (paths relative to the default).
pub type ScopedEntry<'a> = (Option<&'a TargetRef>, ValidationError);

/// Kuma's rule for policies whose `from` configures sidecars and `to` gateways
/// (MeshFaultInjection, MeshRateLimit): with a scope that includes a gateway `from` must be
/// empty, without one `to` must be; the entries allowed are checked (reference kinds,
/// `default`). Paths start at `from` / `to`.
pub fn validate_gateway_scoped(
    gateways: bool,
    from: Vec<ScopedEntry<'_>>,
    from_kinds: &[&str],
    to: Vec<ScopedEntry<'_>>,
    to_kinds: &[&str],
) -> ValidationError {
    let mut errs = ValidationError::new();
    let entries = |errs: &mut ValidationError, list: Vec<ScopedEntry<'_>>, field: &str, kinds| {
        let missing = TargetRef::default();
        for (i, (target_ref, default)) in list.into_iter().enumerate() {
            errs.add_prefixed(
                &format!("{field}[{i}].targetRef"),
                validate_target_ref(target_ref.unwrap_or(&missing), kinds, RefOpts::default()),
            );
            errs.add_prefixed(&format!("{field}[{i}].default"), default);
        }
    };
    if gateways && !from.is_empty() {
        errs.add(
            "from",
            "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to",
        );
    } else {
        entries(&mut errs, from, "from", from_kinds);
    }
    if !gateways && !to.is_empty() {
        errs.add("to", "must not be defined");
    } else {
        entries(&mut errs, to, "to", to_kinds);
    }
    errs
}

/// Kinds a route's `backendRefs` may name.
pub const BACKEND_REF_KINDS: [&str; 4] = [
    "MeshService",
    "MeshServiceSubset",
    "MeshExternalService",
    "MeshMultiZoneService",
];

/// Checks a route's `backendRefs` (Kuma's per-ref `ValidateTargetRef` and
/// `ValidateBackendRef`); paths are relative to the list (`[0].name`).
pub fn validate_backend_refs(refs: &[BackendRef]) -> ValidationError {
    let mut errs = ValidationError::new();
    for (i, r) in refs.iter().enumerate() {
        let at = format!("[{i}]");
        errs.add_prefixed(
            &at,
            validate_target_ref(&r.target_ref(), &BACKEND_REF_KINDS, RefOpts::default()),
        );
        if r.kind.as_deref() == Some("MeshMultiZoneService") && r.port.is_none() {
            errs.add(
                format!("{at}.port"),
                "must be defined with kind MeshMultiZoneService",
            );
        }
    }
    errs
}

/// Headers set on, or added to, a request or response (`HeaderModifier` of MeshRateLimit's
/// `onRateLimit.headers` and MeshHealthCheck's `http.requestHeadersToAdd`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<HeaderKeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<HeaderKeyValue>>,
}

/// One header of a [`HeaderModifier`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderKeyValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

pub use crate::spec::POLICY_ROLE_LABEL;
/// `universal` or `kubernetes`: where a zone resource was created.
pub const ENV_LABEL: &str = "kuma.io/env";
/// The namespace of a resource created on Kubernetes.
pub const KUBE_NAMESPACE_LABEL: &str = "k8s.kuma.io/namespace";

/// A policy's role (`kuma.io/policy-role`). A policy without the label is a system policy
/// (always so on Universal), as in Kuma's `PolicyRole(meta)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRole {
    System,
    Producer,
    Consumer,
    WorkloadOwner,
    /// A value Kuma does not define: treated as "not system".
    Other(String),
}

impl PolicyRole {
    /// The role a resource's labels give it.
    pub fn from_labels(labels: &Tags) -> Self {
        match labels.get(POLICY_ROLE_LABEL).map(String::as_str) {
            None | Some("") | Some("system") => Self::System,
            Some("producer") => Self::Producer,
            Some("consumer") => Self::Consumer,
            Some("workload-owner") => Self::WorkloadOwner,
            Some(other) => Self::Other(other.to_string()),
        }
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::System => "system",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
            Self::WorkloadOwner => "workload-owner",
            Self::Other(s) => s,
        }
    }
}

/// Where the control plane creating a mesh's default policies runs; Kuma's name and labels
/// for them depend on it (`pkg/defaults/mesh/mesh.go`, `resources/labels.Compute`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultPolicyEnv<'a> {
    /// The zone's name on a zone control plane (a standalone one included); `None` on a
    /// global control plane.
    pub zone: Option<&'a str>,
    /// Kuma's system namespace when the store is Kubernetes; `None` on Universal.
    pub kubernetes_system_namespace: Option<&'a str>,
}

/// One default policy: its name, the labels Kuma gives it, its body.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultPolicy<S> {
    pub name: String,
    pub labels: Tags,
    pub spec: S,
}

impl<S> DefaultPolicy<S> {
    /// `<prefix>-<mesh>` (with `.<system namespace>` on Kubernetes) and the labels Kuma
    /// computes for a policy created by the control plane itself in `mesh`.
    pub(crate) fn new(prefix: &str, mesh: &str, env: &DefaultPolicyEnv<'_>, spec: S) -> Self {
        let mesh = if mesh.is_empty() {
            crate::DEFAULT_MESH
        } else {
            mesh
        };
        let namespace = env.kubernetes_system_namespace.filter(|ns| !ns.is_empty());
        let name = match namespace {
            Some(ns) => format!("{prefix}-{mesh}.{ns}"),
            None => format!("{prefix}-{mesh}"),
        };
        let mut labels = Tags::new();
        labels.insert(MESH_LABEL.to_string(), mesh.to_string());
        if let Some(zone) = env.zone {
            let environment = if namespace.is_some() {
                "kubernetes"
            } else {
                "universal"
            };
            labels.insert(ORIGIN_LABEL.to_string(), ORIGIN_ZONE.to_string());
            labels.insert(ZONE_LABEL.to_string(), zone.to_string());
            labels.insert(ENV_LABEL.to_string(), environment.to_string());
        }
        if let Some(ns) = namespace {
            // A policy in the system namespace is a system policy.
            labels.insert(KUBE_NAMESPACE_LABEL.to_string(), ns.to_string());
            labels.insert(
                POLICY_ROLE_LABEL.to_string(),
                PolicyRole::System.as_str().to_string(),
            );
        }
        Self { name, labels, spec }
    }
}

/// Kuma's deprecation remarks for a top-level `targetRef` (`TopLevelTargetRefDeprecations`):
/// MeshService, MeshServiceSubset and MeshSubset give way to Dataplane with labels, a
/// MeshHTTPRoute target to `spec.to[].targetRef`.
pub fn top_level_target_ref_deprecations(target_ref: Option<&TargetRef>) -> Vec<String> {
    match target_ref.and_then(|r| r.kind.as_deref()) {
        Some(kind @ ("MeshService" | "MeshServiceSubset" | "MeshSubset")) => vec![format!(
            "{kind} value for 'targetRef.kind' is deprecated, use Dataplane with labels instead"
        )],
        Some("MeshHTTPRoute") => vec![
            "MeshHTTPRoute value for 'targetRef.kind' is deprecated, use MeshHTTPRoute in spec.to[].targetRef"
                .to_string(),
        ],
        _ => Vec::new(),
    }
}

/// Whether a top-level `targetRef` (missing: `kind: Mesh`) may select gateways (Kuma's
/// `IncludesGateways`): a MeshGateway, a MeshHTTPRoute, or Mesh/MeshSubset without
/// `proxyTypes` or with `Gateway` among them.
pub fn includes_gateways(target_ref: Option<&TargetRef>) -> bool {
    let Some(r) = target_ref else {
        return true;
    };
    match r.kind.as_deref().unwrap_or("") {
        "MeshGateway" | "MeshHTTPRoute" => true,
        "Mesh" | "MeshSubset" => r
            .proxy_types
            .as_ref()
            .is_none_or(|types| types.is_empty() || types.iter().any(|t| t == "Gateway")),
        _ => false,
    }
}

pub(crate) use crate::validate::targetref::{RefOpts, validate_with as validate_target_ref};

/// One string field that also takes a bare integer as its decimal text, for the same reason
/// as [`string_or_integer_list`] (Kuma's MeshFaultInjection tests write `limit: 1000`).
/// `null` is an unset field.
pub(crate) fn string_or_integer<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    struct OptionVisitor;
    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(ItemVisitor).map(Some)
        }
    }
    d.deserialize_option(OptionVisitor)
}

/// A string, or an integer read as its decimal text.
struct ItemVisitor;
impl Visitor<'_> for ItemVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Reads a list of strings in which bare integers count as their decimal text: Kuma reads
/// YAML with `sigs.k8s.io/yaml`, which turns `- 500` into `"500"` for a string field (its
/// own tests write MeshRetry's `retryOn` that way). `null` is an unset list.
pub(crate) fn string_or_integer_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    struct ItemSeed;
    impl<'de> de::DeserializeSeed<'de> for ItemSeed {
        type Value = String;
        fn deserialize<D2: Deserializer<'de>>(self, d: D2) -> Result<String, D2::Error> {
            d.deserialize_any(ItemVisitor)
        }
    }
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_seq(ListVisitor)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element_seed(ItemSeed)? {
                out.push(item);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(ListVisitor)
}

/// Kuma's `BackendResourceRef`: a resource picked by name or by labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendResourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Kuma's deprecation remark for an OpenTelemetry backend given inline by `endpoint`.
pub const OTEL_ENDPOINT_DEPRECATION: &str = "openTelemetry.endpoint is deprecated, use openTelemetry.backendRef with a MeshOpenTelemetryBackend resource instead";

/// Whether an OpenTelemetry backend is given inline (an `endpoint`, no `backendRef`), which
/// Kuma deprecates.
pub fn is_inline_otel_endpoint(
    endpoint: Option<&str>,
    backend_ref: Option<&BackendResourceRef>,
) -> bool {
    endpoint.is_some_and(|e| !e.is_empty()) && backend_ref.is_none()
}

/// Kuma's `ValidateOtelBackendRefOrEndpoint`: exactly one of `endpoint` and `backendRef`,
/// the reference naming a MeshOpenTelemetryBackend by labels, the endpoint `host:port` (no
/// URL; with `host_port`, also one `host:port` splits into, as MeshMetric asks). Paths are
/// relative to the backend (`""`, `endpoint`, `backendRef`).
pub fn validate_otel_endpoint_or_ref(
    endpoint: Option<&str>,
    backend_ref: Option<&BackendResourceRef>,
    host_port: bool,
) -> ValidationError {
    let mut errs = ValidationError::new();
    let endpoint = endpoint.unwrap_or("");
    match (backend_ref, endpoint) {
        (Some(_), e) if !e.is_empty() => errs.add(
            "",
            "openTelemetry must have only one type defined: endpoint, backendRef",
        ),
        (None, "") => errs.add(
            "",
            "openTelemetry must have exactly one defined: endpoint, backendRef",
        ),
        (Some(r), _) => {
            if r.kind.as_deref() != Some("MeshOpenTelemetryBackend") {
                errs.add(
                    "backendRef.kind",
                    r#""kind" must be one of ["MeshOpenTelemetryBackend"]"#,
                );
            }
            if r.labels.as_ref().is_none_or(|l| l.is_empty()) {
                errs.add(
                    "backendRef",
                    "backendRef must have exactly one defined: labels",
                );
            }
        }
        (None, e) if e.contains(['/', '?', '#']) => {
            errs.add("endpoint", "must be in host:port format, not a URL")
        }
        (None, e) if host_port && !splits_host_port(e) => {
            errs.add("endpoint", "must be in host:port format")
        }
        (None, _) => {}
    }
    errs
}

/// Go's `net.SplitHostPort` accepting `host:port` or `[v6]:port` (the port may be empty or
/// a name, as Go allows).
fn splits_host_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, port)) => {
                !host.contains(']') && port.starts_with(':') && !port[1..].contains(':')
            }
            None => false,
        };
    }
    match s.rsplit_once(':') {
        Some((host, _)) => !host.contains(':') && !host.contains('[') && !host.contains(']'),
        None => false,
    }
}

/// govalidator's `IsFilePath`, which Kuma uses: a Windows path (`C:\dir\file`: a drive,
/// then `\`-separated names without `\ / : * ? " < > | CR LF`, only the last one may be
/// empty; at most 32767 bytes after the drive) or a Unix one (starts with `/`, no NUL).
pub(crate) fn is_file_path(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' {
        let rest = &s[3..];
        let names: Vec<&str> = rest.split('\\').collect();
        let last = names.len() - 1;
        let windows = names.iter().enumerate().all(|(i, name)| {
            (i == last || !name.is_empty())
                && !name.chars().any(|c| {
                    matches!(
                        c,
                        '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '\r' | '\n'
                    )
                })
        });
        if windows {
            return rest.len() <= 32767;
        }
    }
    s.starts_with('/') && !s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_their_text() {
        let d: GoDuration = serde_json::from_str("\"1m30s\"").unwrap();
        assert_eq!(d.nanos(), 90_000_000_000);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m30s\"");
        assert_eq!(
            d.to_std(),
            Some(std::time::Duration::from_secs(90)),
            "positive durations convert"
        );
        let negative = GoDuration::parse("-1s").unwrap();
        assert_eq!(
            (negative.nanos(), negative.to_std()),
            (-1_000_000_000, None)
        );
        assert_eq!(GoDuration::from_millis(250).as_str(), "250ms");
        assert_eq!(GoDuration::from_nanos(16_000_000_000).to_string(), "16s");
    }

    #[test]
    fn bad_durations_are_refused_with_gos_message() {
        for (json, message) in [
            ("\"1d\"", "time: unknown unit \"d\" in duration \"1d\""),
            ("\"abc\"", "time: invalid duration \"abc\""),
        ] {
            let err = serde_json::from_str::<GoDuration>(json).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err}");
        }
        // A bare number is not a duration (Kuma refuses `perTryTimeout: 5` too).
        assert!(serde_json::from_str::<GoDuration>("5").is_err());
    }

    #[test]
    fn int_or_string_keeps_its_form() {
        for json in ["1900", "-2", "\"1.9\"", "\"xyz\""] {
            let v: IntOrString = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
        }
        assert_eq!(
            serde_json::from_str::<IntOrString>("7").unwrap(),
            IntOrString::Int(7)
        );
        for bad in ["1.9", "true", "3000000000", "[]"] {
            assert!(serde_json::from_str::<IntOrString>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_follow_shopspring() {
        let cmp = |s: &str, n: i64| Decimal::parse(s).map(|d| d.cmp_int(n));
        use Ordering::*;
        for (text, n, expected) in [
            ("1.9", 0, Greater),
            ("1.9", 2, Less),
            ("-2", 0, Less),
            ("0", 0, Equal),
            ("-0", 0, Equal),
            ("0.000", 0, Equal),
            ("-.5", 0, Less),
            ("+.5", 0, Greater),
            ("5.", 5, Equal),
            ("100", 100, Equal),
            ("100.0000000000000000000000001", 100, Greater),
            ("99.999", 100, Less),
            ("1e2", 100, Equal),
            ("1E+2", 100, Equal),
            ("10000e-2", 100, Equal),
            ("10001e-2", 100, Greater),
            ("1e30", 100, Greater),
            ("-1e30", 0, Less),
            ("1e-30", 0, Greater),
            ("000100", 100, Equal),
            ("123456789012345678901234567890", 100, Greater),
        ] {
            assert_eq!(cmp(text, n), Some(expected), "{text} vs {n}");
        }
        for bad in [
            "",
            ".",
            "-",
            "+",
            "xyz",
            "1.2.3",
            "1e",
            "e5",
            "1e5.5",
            "1_000",
            " 1",
            "1 ",
            "NaN",
            "--1",
            "1e9999999999",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
        assert!(Decimal::parse("-0.0").is_some_and(|d| d.is_zero() && !d.is_negative()));
        let thousandths = |s: &str| Decimal::parse(s).and_then(|d| d.scaled_int_part(3));
        assert_eq!(thousandths("1.9"), Some(1900));
        assert_eq!(thousandths("1900"), Some(1_900_000));
        assert_eq!(thousandths("0.0015"), Some(1));
        assert_eq!(thousandths("0.0001"), Some(0));
        assert_eq!(thousandths("2.5e1"), Some(25_000));
        assert_eq!(thousandths("1e-5"), Some(0));
        assert_eq!(thousandths("0"), Some(0));
        assert_eq!(thousandths("-1.9"), None);
        assert_eq!(thousandths("1e30"), None);
        assert_eq!(
            thousandths("18446744073709551615"),
            None,
            "beyond u64 once scaled"
        );
        assert_eq!(Decimal::from_int(-3).cmp_int(-2), Less);
        assert_eq!(Decimal::from_int(-3).cmp_int(-4), Greater);
    }

    #[test]
    fn integers_in_string_lists_become_text() {
        #[derive(Deserialize)]
        struct L {
            #[serde(default, deserialize_with = "string_or_integer_list")]
            l: Option<Vec<String>>,
        }
        let l: L = serde_json::from_str(r#"{"l": ["5xx", 500, -1]}"#).unwrap();
        assert_eq!(l.l, Some(vec!["5xx".into(), "500".into(), "-1".into()]));
        let l: L = serde_json::from_str(r#"{"l": null}"#).unwrap();
        assert_eq!(l.l, None);
        let l: L = serde_json::from_str("{}").unwrap();
        assert_eq!(l.l, None);
        assert!(serde_json::from_str::<L>(r#"{"l": [1.5]}"#).is_err());
        assert!(serde_json::from_str::<L>(r#"{"l": "5xx"}"#).is_err());
    }

    #[test]
    fn an_integer_in_a_string_field_becomes_text() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "string_or_integer")]
            s: Option<String>,
        }
        let read = |json: &str| serde_json::from_str::<S>(json).map(|s| s.s);
        assert_eq!(read(r#"{"s": 1000}"#).unwrap(), Some("1000".into()));
        assert_eq!(read(r#"{"s": "10kbps"}"#).unwrap(), Some("10kbps".into()));
        assert_eq!(read(r#"{"s": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        assert!(read(r#"{"s": 1.5}"#).is_err());
        assert!(read(r#"{"s": []}"#).is_err());
    }

    #[test]
    fn which_scopes_include_gateways() {
        let includes = |yaml: &str| {
            let v = crate::format::parse_yaml_value(yaml).unwrap();
            let r: TargetRef = serde_json::from_value(v).unwrap();
            includes_gateways(Some(&r))
        };
        assert!(includes_gateways(None));
        for yes in [
            "kind: Mesh",
            "kind: Mesh\nproxyTypes: []",
            "kind: Mesh\nproxyTypes: [Sidecar, Gateway]",
            "kind: MeshSubset\ntags: {a: b}",
            "kind: MeshGateway\nname: edge",
            "kind: MeshHTTPRoute\nname: route",
        ] {
            assert!(includes(yes), "{yes}");
        }
        for no in [
            "kind: Mesh\nproxyTypes: [Sidecar]",
            "kind: MeshSubset\nproxyTypes: [Sidecar]",
            "kind: MeshService\nname: web",
            "kind: Dataplane\nname: web",
            "kind: MeshServiceSubset\nname: web",
        ] {
            assert!(!includes(no), "{no}");
        }
    }

    #[test]
    fn policy_roles() {
        let with = |v: &str| {
            let mut t = Tags::new();
            t.insert(POLICY_ROLE_LABEL.into(), v.into());
            PolicyRole::from_labels(&t)
        };
        assert_eq!(PolicyRole::from_labels(&Tags::new()), PolicyRole::System);
        assert_eq!(with(""), PolicyRole::System);
        assert_eq!(with("producer"), PolicyRole::Producer);
        assert_eq!(with("workload-owner").as_str(), "workload-owner");
        assert_eq!(with("odd"), PolicyRole::Other("odd".into()));
    }

    #[test]
    fn default_policy_names_and_labels() {
        let labels = |p: &DefaultPolicy<()>| {
            p.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        let global = DefaultPolicy::new("mesh-x-all", "prod", &DefaultPolicyEnv::default(), ());
        assert_eq!(global.name, "mesh-x-all-prod");
        assert_eq!(labels(&global), ["kuma.io/mesh=prod"]);

        let zone = DefaultPolicyEnv {
            zone: Some("zone-1"),
            kubernetes_system_namespace: None,
        };
        let p = DefaultPolicy::new("mesh-x-all", "", &zone, ());
        assert_eq!(p.name, "mesh-x-all-default");
        assert_eq!(
            labels(&p),
            [
                "kuma.io/env=universal",
                "kuma.io/mesh=default",
                "kuma.io/origin=zone",
                "kuma.io/zone=zone-1"
            ]
        );

        let k8s = DefaultPolicyEnv {
            zone: Some("zone-1"),
            kubernetes_system_namespace: Some("kuma-system"),
        };
        let p = DefaultPolicy::new("mesh-x-all", "default", &k8s, ());
        assert_eq!(p.name, "mesh-x-all-default.kuma-system");
        assert_eq!(
            labels(&p),
            [
                "k8s.kuma.io/namespace=kuma-system",
                "kuma.io/env=kubernetes",
                "kuma.io/mesh=default",
                "kuma.io/origin=zone",
                "kuma.io/policy-role=system",
                "kuma.io/zone=zone-1"
            ]
        );
    }

    fn refs(yaml: &str, kinds: &[&str], opts: RefOpts) -> Vec<(String, String)> {
        let v = crate::format::parse_yaml_value(yaml).unwrap();
        let r: TargetRef = serde_json::from_value(v).unwrap();
        validate_target_ref(&r, kinds, opts)
            .violations
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect()
    }

    const NEW_KINDS: [&str; 5] = [
        "Mesh",
        "MeshGateway",
        "MeshHTTPRoute",
        "MeshExternalService",
        "MeshMultiZoneService",
    ];

    #[test]
    fn newer_kinds_follow_kumas_rules() {
        let opts = RefOpts::default();
        for ok in [
            "kind: MeshGateway\nname: edge",
            "kind: MeshHTTPRoute\nname: route-1",
            "kind: MeshHTTPRoute\nlabels: {a: b}",
            "kind: MeshExternalService\nname: external",
            "kind: MeshExternalService\nlabels: {a: b}",
            "kind: MeshMultiZoneService\nname: Any/Thing\ntags: {a: b}",
        ] {
            assert!(refs(ok, &NEW_KINDS, opts).is_empty(), "{ok}");
        }
        assert_eq!(
            refs(
                "kind: MeshGateway\nmesh: m\nproxyTypes: [Sidecar]\ntags: {a: 'x y'}\nlabels: {a: b}\nnamespace: n\nsectionName: s",
                &NEW_KINDS,
                opts
            ),
            pairs(&[
                ("name", "must be set when kind is MeshGateway"),
                ("mesh", "must not be set with kind MeshGateway"),
                ("proxyTypes", "must not be set with kind MeshGateway"),
                (
                    "tags[\"a\"]",
                    "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\""
                ),
                ("tags", "must not be set with kind MeshGateway"),
                ("labels", "must not be set with kind MeshGateway"),
                ("namespace", "must not be set with kind MeshGateway"),
                ("sectionName", "must not be set with kind MeshGateway"),
            ])
        );
        let listener_tags = RefOpts {
            gateway_listener_tags_allowed: true,
            ..RefOpts::default()
        };
        assert!(
            refs(
                "kind: MeshGateway\nname: edge\ntags: {port: '80'}",
                &NEW_KINDS,
                listener_tags
            )
            .is_empty()
        );
        assert_eq!(
            refs(
                "kind: MeshHTTPRoute\nname: Bad\nmesh: m\ntags: {a: b}\nproxyTypes: [Gateway]\nsectionName: s\nlabels: {a: b}",
                &NEW_KINDS,
                opts
            ),
            pairs(&[
                (
                    "name",
                    "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'."
                ),
                ("mesh", "must not be set with kind MeshHTTPRoute"),
                ("tags", "must not be set with kind MeshHTTPRoute"),
                ("proxyTypes", "must not be set with kind MeshHTTPRoute"),
                ("sectionName", "must not be set with kind MeshHTTPRoute"),
                (
                    "labels",
                    "either labels or name and namespace must be specified"
                ),
            ])
        );
        assert_eq!(
            refs("kind: MeshHTTPRoute", &NEW_KINDS, opts),
            pairs(&[("", "name or labels must be set when kind is MeshHTTPRoute")])
        );
        assert_eq!(
            refs(
                "kind: MeshExternalService\nnamespace: n\nlabels: {a: b}\nsectionName: s\ntags: {a: b}",
                &NEW_KINDS,
                opts
            ),
            pairs(&[
                ("tags", "must not be set with kind MeshExternalService"),
                ("labels", "either labels or name must be specified"),
                (
                    "sectionName",
                    "must not be set with kind MeshExternalService"
                ),
            ])
        );
        assert_eq!(
            refs("kind: MeshExternalService", &NEW_KINDS, opts),
            pairs(&[(
                "",
                "name or labels must be set when kind is MeshExternalService"
            )])
        );
        // Unsupported kinds stop the check, as before.
        assert_eq!(
            refs("kind: MeshGateway\nmesh: m", &["Mesh"], opts),
            pairs(&[("kind", "value 'MeshGateway' is not supported")])
        );
    }
}
