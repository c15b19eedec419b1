//! The resource model: which types exist, how each is named on the wire, and the
//! [`Resource`] value (metadata + typed spec) that every layer passes around.

use std::collections::BTreeMap;

use crate::spec::{
    DataplaneSpec, MeshServiceSpec, MeshSpec, MeshTrafficPermissionSpec, SecretSpec,
    ZoneIngressSpec, ZoneSpec,
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

/// Every resource type this control plane stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Mesh,
    Dataplane,
    MeshTrafficPermission,
    MeshService,
    Secret,
    GlobalSecret,
    Zone,
    ZoneIngress,
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
    /// Short names kumactl accepts as well (`mtp`, `msvc`).
    pub short_names: &'static [&'static str],
    pub scope: Scope,
    pub shape: Shape,
    /// A targetRef policy (listed in `/policies`, takes `kuma.io/origin`).
    pub policy: bool,
    /// KDS: a zone receives this type from its global.
    pub to_zones: bool,
    /// KDS: the global receives this type from its zones.
    pub to_global: bool,
}

/// One descriptor per type, in [`ResourceType::ALL`] order (which is also the order KDS
/// applies what it receives: a Mesh before what lives in it).
pub static DESCRIPTORS: [TypeDescriptor; 8] = [
    TypeDescriptor {
        rtype: ResourceType::Mesh,
        name: "Mesh",
        plural: "meshes",
        cli_singular: "mesh",
        cli_plural: "meshes",
        short_names: &[],
        scope: Scope::Global,
        shape: Shape::Flat,
        policy: false,
        to_zones: true,
        to_global: false,
    },
    TypeDescriptor {
        rtype: ResourceType::Dataplane,
        name: "Dataplane",
        plural: "dataplanes",
        cli_singular: "dataplane",
        cli_plural: "dataplanes",
        short_names: &[],
        scope: Scope::Mesh,
        shape: Shape::Flat,
        policy: false,
        to_zones: false,
        to_global: true,
    },
    TypeDescriptor {
        rtype: ResourceType::MeshTrafficPermission,
        name: "MeshTrafficPermission",
        plural: "meshtrafficpermissions",
        cli_singular: "meshtrafficpermission",
        cli_plural: "meshtrafficpermissions",
        short_names: &["mtp"],
        scope: Scope::Mesh,
        shape: Shape::Spec,
        policy: true,
        to_zones: true,
        to_global: false,
    },
    TypeDescriptor {
        rtype: ResourceType::MeshService,
        name: "MeshService",
        plural: "meshservices",
        cli_singular: "meshservice",
        cli_plural: "meshservices",
        short_names: &["msvc"],
        scope: Scope::Mesh,
        shape: Shape::Spec,
        policy: false,
        to_zones: false,
        to_global: true,
    },
    TypeDescriptor {
        rtype: ResourceType::Secret,
        name: "Secret",
        plural: "secrets",
        cli_singular: "secret",
        cli_plural: "secrets",
        short_names: &[],
        scope: Scope::Mesh,
        shape: Shape::Flat,
        policy: false,
        to_zones: true,
        to_global: false,
    },
    TypeDescriptor {
        rtype: ResourceType::GlobalSecret,
        name: "GlobalSecret",
        plural: "globalsecrets",
        cli_singular: "global-secret",
        cli_plural: "global-secrets",
        short_names: &[],
        scope: Scope::Global,
        shape: Shape::Flat,
        policy: false,
        to_zones: true,
        to_global: false,
    },
    TypeDescriptor {
        rtype: ResourceType::Zone,
        name: "Zone",
        plural: "zones",
        cli_singular: "zone",
        cli_plural: "zones",
        short_names: &[],
        scope: Scope::Global,
        shape: Shape::Flat,
        policy: false,
        to_zones: false,
        to_global: false,
    },
    TypeDescriptor {
        rtype: ResourceType::ZoneIngress,
        name: "ZoneIngress",
        plural: "zoneingresses",
        cli_singular: "zoneingress",
        cli_plural: "zoneingresses",
        short_names: &[],
        scope: Scope::Global,
        shape: Shape::Flat,
        policy: false,
        to_zones: true,
        to_global: true,
    },
];

impl ResourceType {
    pub const ALL: [ResourceType; 8] = [
        ResourceType::Mesh,
        ResourceType::Dataplane,
        ResourceType::MeshTrafficPermission,
        ResourceType::MeshService,
        ResourceType::Secret,
        ResourceType::GlobalSecret,
        ResourceType::Zone,
        ResourceType::ZoneIngress,
    ];

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
        self.descriptor().policy
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

/// A typed resource body. The variant always agrees with [`Resource::resource_type`].
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Mesh(MeshSpec),
    Dataplane(DataplaneSpec),
    MeshTrafficPermission(MeshTrafficPermissionSpec),
    MeshService(MeshServiceSpec),
    Secret(SecretSpec),
    GlobalSecret(SecretSpec),
    Zone(ZoneSpec),
    ZoneIngress(ZoneIngressSpec),
}

impl Spec {
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Spec::Mesh(_) => ResourceType::Mesh,
            Spec::Dataplane(_) => ResourceType::Dataplane,
            Spec::MeshTrafficPermission(_) => ResourceType::MeshTrafficPermission,
            Spec::MeshService(_) => ResourceType::MeshService,
            Spec::Secret(_) => ResourceType::Secret,
            Spec::GlobalSecret(_) => ResourceType::GlobalSecret,
            Spec::Zone(_) => ResourceType::Zone,
            Spec::ZoneIngress(_) => ResourceType::ZoneIngress,
        }
    }
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
