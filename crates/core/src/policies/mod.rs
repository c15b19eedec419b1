//! One folder per policy, as Kuma keeps `pkg/plugins/policies/<name>/`: each holds its wire
//! shape, its validation, its registry descriptor, its defaults and how it resolves for a
//! proxy. A policy joins the registry with one line in [`crate::resource`]'s
//! `resource_types!`.

pub mod meshtimeout;
pub mod meshtrafficpermission;
