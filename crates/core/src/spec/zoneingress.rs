use serde::{Deserialize, Serialize};

use super::{Admin, Tags};

/// Body of a `ZoneIngress`: the proxy that lets other zones reach this zone's services.
/// It forwards mTLS connections by SNI without terminating them, so the caller's identity
/// reaches the destination sidecar intact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneIngressSpec {
    /// The zone the ingress belongs to; the zone control plane fills it in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    #[serde(default)]
    pub networking: ZoneIngressNetworking,
    /// The services this ingress can reach, kept up to date by the zone control plane.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_services: Vec<AvailableService>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneIngressNetworking {
    /// Where the ingress listens.
    #[serde(default)]
    pub address: String,
    /// Where other zones reach it (NAT, load balancer); `address` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
}

/// One service behind an ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailableService {
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub instances: u32,
    #[serde(default)]
    pub mesh: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external_service: bool,
}

impl ZoneIngressSpec {
    /// The address and port other zones dial.
    pub fn advertised(&self) -> (&str, u32) {
        let n = &self.networking;
        (
            n.advertised_address
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or(&n.address),
            n.advertised_port.filter(|p| *p != 0).unwrap_or(n.port),
        )
    }
}
