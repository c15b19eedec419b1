//! One folder per policy, as Kuma keeps `pkg/plugins/policies/<name>/`: each holds its wire
//! shape (`spec.rs`), its checks with Kuma's paths and messages (`validate.rs`), its registry
//! descriptor, the default policy Kuma creates with every mesh, how it resolves for a proxy,
//! and its tests. A policy joins the registry with one line in [`crate::resource`]'s
//! `resource_types!`. [`common`] holds what they share (numbers given as int or string,
//! header matches, policy roles, default-policy labels); [`rules`] is the generic targetRef engine
//! (Kuma's `pkg/plugins/policies/core`) the new policies resolve through; MeshTrafficPermission
//! keeps its own index for the seed's Allow-wins decision.

pub mod callers;
pub mod common;
pub mod inspect;
pub mod meshaccesslog;
pub mod meshcircuitbreaker;
pub mod meshfaultinjection;
pub mod meshhealthcheck;
pub mod meshhttproute;
pub mod meshloadbalancingstrategy;
pub mod meshmetric;
pub mod meshratelimit;
pub mod meshretry;
pub mod meshtcproute;
pub mod meshtimeout;
pub mod meshtrace;
pub mod meshtrafficpermission;
pub mod rules;

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the policies' tests.

    use serde::de::DeserializeOwned;

    use crate::ValidationError;

    /// Reads a policy body from YAML the way documents are read (YAML → JSON value → typed
    /// body); `Err` carries the path of the offending field and serde's message.
    pub fn parse<T: DeserializeOwned>(yaml: &str) -> Result<T, (String, String)> {
        let value =
            crate::format::parse_yaml_value(yaml).map_err(|e| (String::new(), e.to_string()))?;
        serde_path_to_error::deserialize(value)
            .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
    }

    /// The body of a whole resource document (`type`, `name`, `mesh`, `spec`...).
    pub fn resource_spec(yaml: &str) -> crate::Spec {
        let v = crate::format::parse_yaml_value(yaml).unwrap_or_else(|e| panic!("{e}"));
        crate::format::resource_from_value(&v)
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
    }

    /// A Dataplane document's body.
    pub fn dataplane(yaml: &str) -> crate::spec::DataplaneSpec {
        match resource_spec(yaml) {
            crate::Spec::Dataplane(d) => d,
            other => panic!("not a Dataplane: {other:?}"),
        }
    }

    /// Like [`parse`], panicking with the error: for documents that must read.
    pub fn body<T: DeserializeOwned>(yaml: &str) -> T {
        parse(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"))
    }

    /// The `(field, message)` pairs of a validation result.
    pub fn violations(errs: ValidationError) -> Vec<(String, String)> {
        errs.violations
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect()
    }

    pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect()
    }

    /// Serialises a body back to JSON and checks it equals the JSON form of `yaml`.
    pub fn assert_round_trip<T: DeserializeOwned + serde::Serialize>(yaml: &str) {
        let original = crate::format::parse_yaml_value(yaml).unwrap_or_else(|e| panic!("{e}"));
        let typed: T = body(yaml);
        let written = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, original, "round trip of\n{yaml}");
    }
}
