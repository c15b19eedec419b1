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

    /// The `type:` value in Universal documents and the `kind:` in Kubernetes ones.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Mesh => "Mesh",
            ResourceType::Dataplane => "Dataplane",
            ResourceType::MeshTrafficPermission => "MeshTrafficPermission",
            ResourceType::MeshService => "MeshService",
            ResourceType::Secret => "Secret",
            ResourceType::GlobalSecret => "GlobalSecret",
            ResourceType::Zone => "Zone",
            ResourceType::ZoneIngress => "ZoneIngress",
        }
    }

    /// The REST collection segment: `/meshes/{mesh}/{plural}` or `/{plural}`.
    pub fn plural(self) -> &'static str {
        match self {
            ResourceType::Mesh => "meshes",
            ResourceType::Dataplane => "dataplanes",
            ResourceType::MeshTrafficPermission => "meshtrafficpermissions",
            ResourceType::MeshService => "meshservices",
            ResourceType::Secret => "secrets",
            ResourceType::GlobalSecret => "globalsecrets",
            ResourceType::Zone => "zones",
            ResourceType::ZoneIngress => "zoneingresses",
        }
    }

    /// kumactl's singular argument (`kumactl get mesh default`).
    pub fn cli_singular(self) -> &'static str {
        match self {
            ResourceType::Mesh => "mesh",
            ResourceType::Dataplane => "dataplane",
            ResourceType::MeshTrafficPermission => "meshtrafficpermission",
            ResourceType::MeshService => "meshservice",
            ResourceType::Secret => "secret",
            ResourceType::GlobalSecret => "global-secret",
            ResourceType::Zone => "zone",
            ResourceType::ZoneIngress => "zoneingress",
        }
    }

    /// kumactl's plural argument (`kumactl get meshes`).
    pub fn cli_plural(self) -> &'static str {
        match self {
            ResourceType::GlobalSecret => "global-secrets",
            other => other.plural(),
        }
    }

    /// Short names kumactl accepts as well (`mtp`, `msvc`).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            ResourceType::MeshTrafficPermission => &["mtp"],
            ResourceType::MeshService => &["msvc"],
            _ => &[],
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            ResourceType::Mesh
            | ResourceType::GlobalSecret
            | ResourceType::Zone
            | ResourceType::ZoneIngress => Scope::Global,
            _ => Scope::Mesh,
        }
    }

    pub fn shape(self) -> Shape {
        match self {
            ResourceType::MeshTrafficPermission | ResourceType::MeshService => Shape::Spec,
            _ => Shape::Flat,
        }
    }

    /// Whether the type is a targetRef policy (listed in `/policies`, takes `kuma.io/origin`).
    pub fn is_policy(self) -> bool {
        matches!(self, ResourceType::MeshTrafficPermission)
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
