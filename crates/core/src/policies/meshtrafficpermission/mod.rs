//! MeshTrafficPermission: who may call each inbound of a Dataplane.
//!
//! # Semantics (the project's, which differ from Kuma's on purpose)
//!
//! - **mTLS off** in the mesh: every inbound lets everyone in ([`AuthzMode::AllowAll`]); there
//!   are no identities to tell callers apart.
//! - **mTLS on**: a caller is let in iff at least one policy whose top-level `targetRef`
//!   selects the inbound has a `from` entry whose `targetRef` matches the caller with action
//!   `Allow` or `AllowWithShadowDeny`. **Allow wins**: the effective permission is the union
//!   of the matching Allows; `Deny` only means "not allowed unless some Allow matches", so it
//!   never takes access away and order/specificity do not matter (Kuma instead lets the most
//!   specific / last policy win). No match: denied. Allowed only through
//!   `AllowWithShadowDeny`: [`Decision::AllowShadowDeny`].
//! - Callers are [`PeerIdentity`]s parsed from the client certificate's URI SANs; a caller
//!   from another mesh never matches.
//!
//! # Selection
//!
//! Top-level `targetRef` (missing = `Mesh`): `Mesh` = every inbound; `MeshSubset{tags}` =
//! inbounds whose tags contain them all (inbound tags, not Dataplane labels);
//! `MeshService{name}` = inbounds whose `kuma.io/service` is `name`;
//! `MeshService{labels}` = inbounds of the MeshService *resources* whose labels match, looked
//! up in a [`MeshServiceCatalog`] (Kuma's meaning; without a catalog such a reference selects
//! nothing rather than being reinterpreted as inbound tags); `MeshServiceSubset{name,tags}` =
//! both; `Dataplane{name?,labels?}` = Dataplanes with that name and labels (neither = all).
//! `sectionName` keeps only the inbound whose `name`, or `port` written as a number, equals
//! it, whatever the kind. `proxyTypes` (`Sidecar`/`Gateway`) and `mesh` narrow further;
//! `namespace` is ignored (Universal resources have none). Unknown kinds select nothing.
//!
//! `from[].targetRef`: `Mesh` = any identity of the mesh; `MeshService{name}` = identity with
//! that service (`labels` via the catalog, as above); `MeshSubset{tags}` = identity holding
//! all tags, `kuma.io/service` compared against the SPIFFE services; `MeshServiceSubset` =
//! both. A missing or unknown one matches nobody. The `rules` form grants nothing (validation
//! refuses it until MeshIdentity exists).

mod authz;
mod identity;
mod index;
mod resolve;
mod select;
mod spec;
mod validate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use authz::{AuthzMode, Decision, Grant, InboundAuthz, SubsetRule, Verdict};
pub use identity::{IdentityError, PeerIdentity};
pub use index::{DataplaneRef, MatchedFrom, MatchedPolicies, MatchedPolicy, PolicyIndex};
pub use select::{Action, CallerMatcher, MeshServiceCatalog};
pub use spec::{FromItem, MeshTrafficPermissionSpec, MtpConf};

use crate::resource::{PolicyForm, ResourceBody, ResourceType, Scope, Shape, TypeDescriptor};
use crate::spec::{DataplaneSpec, MeshSpec};
use crate::{Meta, ValidationError};

/// MeshTrafficPermission in the registry (`kuma:policy:order=1100`).
pub const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
    rtype: ResourceType::MeshTrafficPermission,
    name: "MeshTrafficPermission",
    plural: "meshtrafficpermissions",
    cli_singular: "meshtrafficpermission",
    cli_plural: "meshtrafficpermissions",
    short_name: "mtp",
    short_names: &["mtp"],
    scope: Scope::Mesh,
    shape: Shape::Spec,
    policy_order: Some(1100),
    policy_form: PolicyForm {
        to: false,
        from: true,
        rules: true,
        from_as_rules: false,
    },
    to_zones: true,
    to_global: false,
};

impl ResourceBody for MeshTrafficPermissionSpec {
    fn validate(&self, _: &Meta) -> ValidationError {
        validate::validate(self)
    }

    fn warnings(&self) -> Vec<String> {
        validate::warnings(self)
    }
}

/// Resolves one Dataplane against the policies of its mesh: one [`InboundAuthz`] per
/// `networking.inbound`, in order. For many dataplanes build a [`PolicyIndex`] once instead.
pub fn resolve_dataplane(
    mesh_name: &str,
    mesh: &MeshSpec,
    dataplane_name: &str,
    dataplane_labels: &BTreeMap<String, String>,
    dp: &DataplaneSpec,
    policies: &[(String, &MeshTrafficPermissionSpec)],
) -> Vec<InboundAuthz> {
    let dp = DataplaneRef {
        mesh: mesh_name,
        name: dataplane_name,
        labels: dataplane_labels,
        spec: dp,
    };
    PolicyIndex::new(policies).resolve(mesh, &dp)
}

/// The policies selecting each inbound of one Dataplane, for `kumactl inspect dataplane
/// --type=policies`; one [`MatchedPolicies`] per `networking.inbound`, in order.
pub fn explain_dataplane(
    mesh_name: &str,
    dataplane_name: &str,
    dataplane_labels: &BTreeMap<String, String>,
    dp: &DataplaneSpec,
    policies: &[(String, &MeshTrafficPermissionSpec)],
) -> Vec<MatchedPolicies> {
    let dp = DataplaneRef {
        mesh: mesh_name,
        name: dataplane_name,
        labels: dataplane_labels,
        spec: dp,
    };
    PolicyIndex::new(policies).explain(&dp)
}
