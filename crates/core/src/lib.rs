//! The pure core of Aerie: resource types, the Universal and Kubernetes document formats,
//! validation and policy resolution.
//!
//! Nothing here performs I/O or reads the clock: the store stamps versions and times, the
//! control plane decides when to resolve. That keeps every rule of the mesh unit-testable
//! and lets the same code run in the control plane, in `kumactl` (client-side validation)
//! and in benchmarks.
//!
//! Data flows one way: text -> [`format::parse_documents`] -> [`Resource`] ->
//! [`validate::validate`] -> stored -> [`policy`] resolution -> the proxy's compact form.

#![forbid(unsafe_code)]

pub mod duration;
pub mod format;
pub mod kri;
pub mod multizone;
pub mod net;
pub mod policies;
pub mod proxy_config;
pub mod resource;
pub mod spec;
pub mod validate;
pub mod violation;

pub use resource::{
    DESCRIPTORS, Meta, PolicyForm, Resource, ResourceType, Scope, Shape, Spec, TypeDescriptor,
};
pub use violation::{ValidationError, Violation};

/// The mesh a mesh-scoped resource lands in when a document names none (Kuma's default).
pub const DEFAULT_MESH: &str = "default";
