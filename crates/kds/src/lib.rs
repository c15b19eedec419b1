//! KDS, the protocol between the global control plane and its zones.
//!
//! - [`grpc`]: Kuma's `KDSSyncService` (two bidirectional streams of Envoy delta discovery
//!   messages), server and client.
//! - [`wire`]: resources on the wire, keyed `<Type>/<mesh>/<name>` and versioned by content.
//! - [`delta`]: what to send, given what the peer holds; this is what makes a reconnect
//!   cheap (only the difference travels).
//! - [`apply`]: storing what arrives, touching only the synced copies the receiver owns.
//!
//! Which types travel where, and how they are renamed, is in
//! [`aerie_core::multizone`]; the control plane (`aerie-cp`) runs the streams.

#![forbid(unsafe_code)]

pub mod apply;
pub mod delta;
pub mod grpc;
pub mod wire;

pub use envoy_types::pb::envoy::config::core::v3::Node;
pub use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as WireResource,
};
pub use envoy_types::pb::google::rpc::Status as RpcStatus;

/// The type URL both streams use (one type carrying every resource type, so that a message
/// can hold a mesh and the policies inside it, applied in that order).
pub const KDS_TYPE: &str = wire::RESOURCE_TYPE;

/// gRPC metadata naming the zone on both streams (with its token in `authorization`).
pub const ZONE_METADATA: &str = "kds-zone";
