//! The resource model: which types exist, how each is named on the wire, and the
//! [`Resource`] value (metadata + typed spec) that every layer passes around.

use std::collections::BTreeMap;

use crate::ValidationError;
use crate::policies::{
    meshaccesslog, meshcircuitbreaker, meshfaultinjection, meshhealthcheck, meshhttproute,
    meshloadbalancingstrategy, meshmetric, meshratelimit, meshretry, meshtcproute, meshtimeout,
    meshtrace, meshtrafficpermission,
};
use crate::spec::{
    DataplaneSpec, MeshServiceSpec, MeshSpec, SecretSpec, ZoneIngressSpec, ZoneSpec,
};

/// Where a resource lives: inside a mesh (`/meshes/{mesh}/{plural}/{name}`) or beside meshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Mesh,
}

/// How a Universal document lays out its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Proto-based types (Mesh, Dataplane, Secret, Zone): fields at the top level.
    Flat,
    /// Newer types (policies, MeshService): fields under `spec:`, plus `labels`.
    Spec,
}

/// Everything static about a resource type, in one place: its names on the wire, in REST and
/// in kumactl, where it lives, and how it travels between a global control plane and its
/// zones. REST routes, `/_resources`, kumactl's arguments and KDS's sync sets are derived from
/// [`DESCRIPTORS`]; a type added there is reachable everywhere its descriptor says.
#[derive(Debug)]
pub struct TypeDescriptor {
    pub rtype: ResourceType,
    /// The `type:` value in Universal documents and the `kind:` in Kubernetes ones.
    pub name: &'static str,
    /// The REST collection segment: `/meshes/{mesh}/{plural}` or `/{plural}`.
    pub plural: &'static str,
    /// kumactl's singular argument (`kumactl get mesh default`).
    pub cli_singular: &'static str,
    /// kumactl's plural argument (`kumactl get meshes`).
    pub cli_plural: &'static str,
    /// Kuma's `ShortName`: the type's part of a KRI (`kri_<shortName>_...`, see
    /// [`crate::kri`]); empty for types Kuma gives none (Secret, GlobalSecret), which have no
    /// KRI. Shown in `/_resources`.
    pub short_name: &'static str,
    /// Short names kumactl accepts as well (`mtp`, `msvc`).
    pub short_names: &'static [&'static str],
    pub scope: Scope,
    pub shape: Shape,
    /// For a targetRef policy (listed in `/policies`, takes `kuma.io/origin`): Kuma's
    /// `kuma:policy:order`, the order in which policies are applied to a proxy's config.
    pub policy_order: Option<u16>,
    /// Which entry lists a policy has (Kuma's `HasToTargetRef`, `HasFromTargetRef`,
    /// `HasRulesTargetRef`) and whether its `from` entries are read as `rules`
    /// (`IsFromAsRules`); all false for other types. Shown in `/_resources`.
    pub policy_form: PolicyForm,
    /// KDS: a zone receives this type from its global.
    pub to_zones: bool,
    /// KDS: the global receives this type from its zones.
    pub to_global: bool,
}

/// A policy's entry lists, as Kuma's descriptors state them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyForm {
    pub to: bool,
    pub from: bool,
    pub rules: bool,
    pub from_as_rules: bool,
}

impl PolicyForm {
    /// A single-item kind (MeshMetric, MeshTrace): a top-level `default`, no `to`, `from`
    /// nor `rules`.
    pub const fn is_single_item(&self) -> bool {
        !self.to && !self.from && !self.rules
    }

    /// Not a policy.
    pub const NONE: PolicyForm = PolicyForm {
        to: false,
        from: false,
        rules: false,
        from_as_rules: false,
    };
}

/// What every resource body offers beyond its wire shape: its own checks, with Kuma's field
/// paths and messages. Implemented next to each type's validation (policies: in their folder).
pub trait ResourceBody {
    /// Checks the body (the metadata is checked separately; `meta` is there for rules that
    /// depend on labels, such as a policy's role). Every problem is reported at once.
    fn validate(&self, meta: &Meta) -> ValidationError;

    /// Non-fatal remarks (deprecations) shown after a successful apply.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How [`Spec::decode`] reads one typed body: the format layer supplies the JSON and the error
/// reporting, the registry picks the type.
pub trait SpecDecoder {
    type Error;
    fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, Self::Error>;
}

/// The registry: one line per resource type, `Variant(BodyType) = DESCRIPTOR;`. It defines
/// [`ResourceType`], [`Spec`], [`DESCRIPTORS`] and the dispatch from a type to its body's
/// decoding, encoding and checks. A new policy is a folder under `policies/` plus one line here.
macro_rules! resource_types {
    ($( $variant:ident($body:ty) = $descriptor:expr; )+) => {
        /// Every resource type this control plane stores, in the order KDS applies what it
        /// receives (a Mesh before what lives in it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $( $variant, )+
        }

        const TYPE_COUNT: usize = [$(stringify!($variant)),+].len();

        /// One descriptor per type, in [`ResourceType::ALL`] order.
        pub static DESCRIPTORS: [TypeDescriptor; TYPE_COUNT] = [$($descriptor),+];

        impl ResourceType {
            pub const ALL: [ResourceType; TYPE_COUNT] = [$(ResourceType::$variant),+];
        }

        /// A typed resource body. The variant always agrees with [`Resource::resource_type`].
        #[derive(Debug, Clone, PartialEq)]
        pub enum Spec {
            $( $variant($body), )+
        }

        impl Spec {
            pub fn resource_type(&self) -> ResourceType {
                match self {
                    $( Spec::$variant(_) => ResourceType::$variant, )+
                }
            }

            /// The body's checks.
            pub fn body(&self) -> &dyn ResourceBody {
                match self {
                    $( Spec::$variant(s) => s, )+
                }
            }

            /// The body as JSON (what the store keeps and the API returns).
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $( Spec::$variant(s) => serde_json::to_value(s), )+
                }
            }

            /// Reads a body of type `rtype` through `decoder`.
            pub fn decode<D: SpecDecoder>(rtype: ResourceType, decoder: D) -> Result<Spec, D::Error> {
                match rtype {
                    $( ResourceType::$variant => decoder.decode().map(Spec::$variant), )+
                }
            }
        }
    };
}

resource_types! {
    Mesh(MeshSpec) = MESH;
    Dataplane(DataplaneSpec) = DATAPLANE;
    MeshTrafficPermission(meshtrafficpermission::MeshTrafficPermissionSpec) = meshtrafficpermission::DESCRIPTOR;
    MeshTimeout(meshtimeout::MeshTimeoutSpec) = meshtimeout::DESCRIPTOR;
    MeshCircuitBreaker(meshcircuitbreaker::MeshCircuitBreakerSpec) = meshcircuitbreaker::DESCRIPTOR;
    MeshRetry(meshretry::MeshRetrySpec) = meshretry::DESCRIPTOR;
    MeshTCPRoute(meshtcproute::MeshTcpRouteSpec) = meshtcproute::DESCRIPTOR;
    MeshHTTPRoute(meshhttproute::MeshHttpRouteSpec) = meshhttproute::DESCRIPTOR;
    MeshFaultInjection(meshfaultinjection::MeshFaultInjectionSpec) = meshfaultinjection::DESCRIPTOR;
    MeshRateLimit(meshratelimit::MeshRateLimitSpec) = meshratelimit::DESCRIPTOR;
    MeshHealthCheck(meshhealthcheck::MeshHealthCheckSpec) = meshhealthcheck::DESCRIPTOR;
    MeshLoadBalancingStrategy(meshloadbalancingstrategy::MeshLoadBalancingStrategySpec) = meshloadbalancingstrategy::DESCRIPTOR;
    MeshAccessLog(meshaccesslog::MeshAccessLogSpec) = meshaccesslog::DESCRIPTOR;
    MeshMetric(meshmetric::MeshMetricSpec) = meshmetric::DESCRIPTOR;
    MeshTrace(meshtrace::MeshTraceSpec) = meshtrace::DESCRIPTOR;
    MeshService(MeshServiceSpec) = MESH_SERVICE;
    Secret(SecretSpec) = SECRET;
    GlobalSecret(SecretSpec) = GLOBAL_SECRET;
    Zone(ZoneSpec) = ZONE;
    ZoneIngress(ZoneIngressSpec) = ZONE_INGRESS;
}

// The types that are not policies.
const MESH: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::Mesh,
    name: "Mesh",
    plural: "meshes",
    cli_singular: "mesh",
    cli_plural: "meshes",
    short_name: "m",
    short_names: &[],
    scope: Scope::Global,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: true,
    to_global: false,
};
const DATAPLANE: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::Dataplane,
    name: "Dataplane",
    plural: "dataplanes",
    cli_singular: "dataplane",
    cli_plural: "dataplanes",
    short_name: "dp",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: false,
    to_global: true,
};
const MESH_SERVICE: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshService,
    name: "MeshService",
    plural: "meshservices",
    cli_singular: "meshservice",
    cli_plural: "meshservices",
    short_name: "msvc",
    short_names: &["msvc"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: false,
    to_global: true,
};
const SECRET: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::Secret,
    name: "Secret",
    plural: "secrets",
    cli_singular: "secret",
    cli_plural: "secrets",
    short_name: "",
    short_names: &[],
    scope: Scope::Mesh,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: true,
    to_global: false,
};
const GLOBAL_SECRET: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::GlobalSecret,
    name: "GlobalSecret",
    plural: "globalsecrets",
    cli_singular: "global-secret",
    cli_plural: "global-secrets",
    short_name: "",
    short_names: &[],
    scope: Scope::Global,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: true,
    to_global: false,
};
const ZONE: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::Zone,
    name: "Zone",
    plural: "zones",
    cli_singular: "zone",
    cli_plural: "zones",
    short_name: "z",
    short_names: &[],
    scope: Scope::Global,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: false,
    to_global: false,
};
const ZONE_INGRESS: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::ZoneIngress,
    name: "ZoneIngress",
    plural: "zoneingresses",
    cli_singular: "zoneingress",
    cli_plural: "zoneingresses",
    short_name: "zi",
    short_names: &[],
    scope: Scope::Global,
    shape: Shape::Flat,
    policy_order: None,
    policy_form: PolicyForm::NONE,
    to_zones: true,
    to_global: true,
};

impl ResourceType {
    /// This type's descriptor.
    pub fn descriptor(self) -> &'static TypeDescriptor {
        // `ALL` and `DESCRIPTORS` share their order (checked by a test).
        let i = Self::ALL.iter().position(|t| *t == self).unwrap_or(0);
        &DESCRIPTORS[i]
    }

    /// The `type:` value in Universal documents and the `kind:` in Kubernetes ones.
    pub fn name(self) -> &'static str {
        self.descriptor().name
    }

    /// The REST collection segment: `/meshes/{mesh}/{plural}` or `/{plural}`.
    pub fn plural(self) -> &'static str {
        self.descriptor().plural
    }

    /// kumactl's singular argument (`kumactl get mesh default`).
    pub fn cli_singular(self) -> &'static str {
        self.descriptor().cli_singular
    }

    /// kumactl's plural argument (`kumactl get meshes`).
    pub fn cli_plural(self) -> &'static str {
        self.descriptor().cli_plural
    }

    /// Kuma's `ShortName`, the type's part of a KRI; empty when the type has no KRI.
    pub fn short_name(self) -> &'static str {
        self.descriptor().short_name
    }

    /// The type whose KRI short name is `short` (`mt` -> MeshTimeout); none for `""`.
    pub fn from_short_name(short: &str) -> Option<ResourceType> {
        if short.is_empty() {
            return None;
        }
        Self::ALL.into_iter().find(|t| t.short_name() == short)
    }

    /// Kuma's `includeInFederation` in `/_resources`: the type travels from a global to its
    /// zones and is not provided by zones (Kuma: `GlobalToZonesFlag` and not read-only), so
    /// exporting a control plane for federation takes it along.
    pub fn include_in_federation(self) -> bool {
        let d = self.descriptor();
        d.to_zones && !d.to_global
    }

    /// Short names kumactl accepts as well (`mtp`, `msvc`).
    pub fn short_names(self) -> &'static [&'static str] {
        self.descriptor().short_names
    }

    pub fn scope(self) -> Scope {
        self.descriptor().scope
    }

    pub fn shape(self) -> Shape {
        self.descriptor().shape
    }

    /// Whether the type is a targetRef policy (listed in `/policies`, takes `kuma.io/origin`).
    pub fn is_policy(self) -> bool {
        self.descriptor().policy_order.is_some()
    }

    /// The types a zone receives from its global, in the order they are applied.
    pub fn synced_to_zones() -> impl Iterator<Item = ResourceType> {
        DESCRIPTORS.iter().filter(|d| d.to_zones).map(|d| d.rtype)
    }

    /// The types the global receives from its zones, in the order they are applied.
    pub fn synced_to_global() -> impl Iterator<Item = ResourceType> {
        DESCRIPTORS.iter().filter(|d| d.to_global).map(|d| d.rtype)
    }

    /// Looks a type up by its `type:`/`kind:` name.
    pub fn from_name(name: &str) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Looks a type up by REST plural (also Kuma's `global-secrets` alias).
    pub fn from_plural(plural: &str) -> Option<ResourceType> {
        if plural == "global-secrets" {
            return Some(ResourceType::GlobalSecret);
        }
        Self::ALL.into_iter().find(|t| t.plural() == plural)
    }

    /// Looks a type up the way kumactl's arguments name it: singular, plural, short name or
    /// the type name itself, case-insensitively.
    pub fn from_cli(arg: &str) -> Option<ResourceType> {
        let a = arg.to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| {
            t.cli_singular() == a
                || t.cli_plural() == a
                || t.plural() == a
                || t.name().to_ascii_lowercase() == a
                || t.short_names().contains(&a.as_str())
        })
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Identity and bookkeeping of a stored resource. The store owns `version` and the times.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub name: String,
    /// `Some` for mesh-scoped types, `None` for global ones.
    pub mesh: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Increases by one on every write; 0 for a resource not stored yet.
    pub version: u64,
    /// RFC 3339, set by the store.
    pub creation_time: Option<String>,
    pub modification_time: Option<String>,
}

/// One resource: metadata plus typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub meta: Meta,
    pub spec: Spec,
}

impl Resource {
    pub fn resource_type(&self) -> ResourceType {
        self.spec.resource_type()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The mesh of a mesh-scoped resource; `""` for global ones.
    pub fn mesh(&self) -> &str {
        self.meta.mesh.as_deref().unwrap_or("")
    }

    /// A human-readable key: `Mesh "default"` or `MeshTrafficPermission "allow-all" in mesh "default"`.
    pub fn describe(&self) -> String {
        match &self.meta.mesh {
            Some(m) => format!(
                "{} \"{}\" in mesh \"{}\"",
                self.resource_type(),
                self.meta.name,
                m
            ),
            None => format!("{} \"{}\"", self.resource_type(), self.meta.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_own_descriptor_in_order() {
        assert_eq!(DESCRIPTORS.len(), ResourceType::ALL.len());
        for (t, d) in ResourceType::ALL.iter().zip(DESCRIPTORS.iter()) {
            assert_eq!(*t, d.rtype);
            assert!(std::ptr::eq(t.descriptor(), d));
        }
        // A Mesh arrives before what lives in it.
        assert_eq!(
            ResourceType::synced_to_zones().next(),
            Some(ResourceType::Mesh)
        );
    }

    #[test]
    fn short_names_are_kumas_and_unique() {
        let expected = [
            (ResourceType::Mesh, "m"),
            (ResourceType::Dataplane, "dp"),
            (ResourceType::MeshTrafficPermission, "mtp"),
            (ResourceType::MeshTimeout, "mt"),
            (ResourceType::MeshCircuitBreaker, "mcb"),
            (ResourceType::MeshRetry, "mr"),
            (ResourceType::MeshTCPRoute, "mtcpr"),
            (ResourceType::MeshHTTPRoute, "mhttpr"),
            (ResourceType::MeshFaultInjection, "mfi"),
            (ResourceType::MeshRateLimit, "mrl"),
            (ResourceType::MeshHealthCheck, "mhc"),
            (ResourceType::MeshLoadBalancingStrategy, "mlbs"),
            (ResourceType::MeshAccessLog, "mal"),
            (ResourceType::MeshMetric, "mm"),
            (ResourceType::MeshTrace, "mtr"),
            (ResourceType::MeshService, "msvc"),
            (ResourceType::Secret, ""),
            (ResourceType::GlobalSecret, ""),
            (ResourceType::Zone, "z"),
            (ResourceType::ZoneIngress, "zi"),
        ];
        assert_eq!(expected.len(), ResourceType::ALL.len());
        for (t, short) in expected {
            assert_eq!(t.short_name(), short, "{t}");
            if !short.is_empty() {
                assert_eq!(ResourceType::from_short_name(short), Some(t));
            }
        }
    }

    #[test]
    fn federation_takes_what_the_global_provides() {
        let federated: Vec<ResourceType> = ResourceType::ALL
            .into_iter()
            .filter(|t| t.include_in_federation())
            .collect();
        let mut expected = vec![
            ResourceType::Mesh,
            ResourceType::Secret,
            ResourceType::GlobalSecret,
        ];
        expected.extend(ResourceType::ALL.into_iter().filter(|t| t.is_policy()));
        expected.sort();
        assert_eq!(federated, expected);
    }

    #[test]
    fn lookups_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_name(t.name()), Some(t));
            assert_eq!(ResourceType::from_plural(t.plural()), Some(t));
            assert_eq!(ResourceType::from_cli(t.cli_singular()), Some(t));
            assert_eq!(ResourceType::from_cli(t.cli_plural()), Some(t));
        }
        assert_eq!(
            ResourceType::from_cli("mtp"),
            Some(ResourceType::MeshTrafficPermission)
        );
        assert_eq!(
            ResourceType::from_cli("MeshTrafficPermission"),
            Some(ResourceType::MeshTrafficPermission)
        );
        assert_eq!(
            ResourceType::from_plural("global-secrets"),
            Some(ResourceType::GlobalSecret)
        );
        assert_eq!(ResourceType::from_cli("nope"), None);
    }
}
