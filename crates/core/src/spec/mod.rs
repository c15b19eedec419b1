//! Wire shapes of each resource type's body, as Kuma spells them (camelCase JSON keys).
//!
//! These structs fix the *structure* (which keys exist, which are objects, lists, numbers):
//! unknown keys are refused with the path of the offending field. Values with a closed set of
//! choices (actions, kinds, modes) stay strings here so that [`crate::validate`] can report
//! every bad value at once, Kuma-style; resolution works on validated resources only.

mod dataplane;
mod mesh;
mod meshservice;
mod other;
mod targetref;
mod zoneingress;

pub use dataplane::*;
pub use mesh::*;
pub use meshservice::*;
pub use other::*;
pub use targetref::*;
pub use zoneingress::*;

use std::collections::BTreeMap;

/// Tag or label maps: ordered so output is stable.
pub type Tags = BTreeMap<String, String>;
