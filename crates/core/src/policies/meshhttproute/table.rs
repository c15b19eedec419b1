//! The route table a proxy enforces on one outbound: what the control plane resolved from
//! the MeshHTTPRoutes (and MeshTCPRoutes) applying to it, compact and already ordered.
//! kuma-dp walks the rules in order and takes the first that matches; every string the
//! proxy compares with is here verbatim (header names lower-cased), and each backend carries
//! its own endpoints, so the proxy resolves nothing.
//!
//! Kuma's Envoy translation (`pkg/plugins/policies/meshhttproute/xds/`) gives the
//! semantics: regular expressions match the whole value (Envoy's `safe_regex`), a
//! `PathPrefix` matches the prefix itself and anything under it at a `/` boundary
//! (`/api` matches `/api` and `/api/x`, not `/apix`), several matchers of one header or
//! query parameter keep the first.

use serde::{Deserialize, Serialize};

use crate::proxy_config::Endpoint;

/// The HTTP route table of one outbound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoutes {
    /// Most specific first; the last is Kuma's catch-all (`PathPrefix /`) unless a route
    /// already matched everything.
    pub rules: Vec<HttpRouteRule>,
}

/// One route: every given matcher must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The MeshHTTPRoute it comes from (empty for the catch-all).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<RouteFilter>,
    /// Weighted, each weight above 0; never empty.
    pub backends: Vec<RouteBackend>,
    /// MeshTimeout of the route's own rule (a `to[]` entry naming its MeshHTTPRoute, on an
    /// outbound with a `backendRef`, as Kuma): its `http.requestTimeout` and
    /// `http.streamIdleTimeout` replace the outbound's for this route (the others are the
    /// connection's). `None`: the outbound's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<crate::policies::meshtimeout::Timeouts>,
    /// MeshRetry of the route's own rule, replacing the outbound's for this route. `None`:
    /// the outbound's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<crate::policies::meshretry::Retry>,
}

/// A path condition (on the path without its query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum PathMatcher {
    Exact(String),
    /// Without a trailing `/`: `""` (from `/`) matches every path.
    Prefix(String),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatcher {
    /// Lower-case.
    pub name: String,
    #[serde(flatten)]
    pub kind: ValueMatcher,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryMatcher {
    pub name: String,
    #[serde(flatten)]
    pub kind: ValueMatcher,
}

/// How a header or query value is matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "match", content = "value", rename_all = "camelCase")]
pub enum ValueMatcher {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present,
    Absent,
}

/// What a matched request goes through before (and its answer after) the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RouteFilter {
    RequestHeaders(HeaderEdits),
    ResponseHeaders(HeaderEdits),
    /// Answered by the proxy: a redirect to the request's URL with these parts replaced.
    Redirect(Redirect),
    UrlRewrite(UrlRewrite),
    /// A copy of the request to another backend, its answer dropped.
    Mirror(Mirror),
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes (names lower-case).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// 301, 302 (Kuma's default), 303, 307 or 308.
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// A path rewrite; `ReplacePrefixMatch` replaces the rule's `Prefix` path matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum PathRewrite {
    Full(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// `None`: the outbound's own destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Box<RouteDestination>>,
    /// Share of the matched requests mirrored, per million.
    pub per_million: u32,
}

/// One weighted backend of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteBackend {
    pub weight: u32,
    /// `None`: the outbound's own destination (its endpoints and connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<RouteDestination>,
}

/// Another destination than the outbound's: what an outbound carries to dial it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// The `kuma.io/service` (for logs), with the subset's tags when there are some.
    pub name: String,
    /// The `kuma.io/service` (or MeshService) alone.
    #[serde(default)]
    pub service: String,
    pub spiffe_id: String,
    pub sni: String,
    pub endpoints: Vec<Endpoint>,
    /// MeshHealthCheck of the destination's service (the outbound's own when it is the
    /// same service), checked by the caller's sidecar as for the outbound's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::policies::meshhealthcheck::HealthCheck>,
}

/// A MeshTCPRoute's say on one outbound: where its connections go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoutes {
    /// Weighted, each weight above 0; never empty.
    pub backends: Vec<RouteBackend>,
}
