//! Validation of a [`ProxyConfig`] into the listeners it asks for. Anything wrong with the
//! proxy's own listeners refuses the whole config (a NACK): applying half of it would leave the
//! proxy in a state the control plane never computed. Another proxy's endpoint that cannot be
//! dialled is skipped instead: it must not freeze the config of everyone calling its service.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use aerie_core::proxy_config::{
    InboundConfig, MtlsMode, OutboundConfig, OutboundPolicies, ProxyConfig,
};

use crate::proxy::ProxyOptions;

/// Why a config was refused; the last good config stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config is for {got_mesh}/{got_name}, this proxy is {mesh}/{name}")]
    WrongDataplane {
        mesh: String,
        name: String,
        got_mesh: String,
        got_name: String,
    },
    #[error("{what}: invalid IP address {address:?}")]
    Address { what: String, address: String },
    #[error("{what}: port 0 is not valid")]
    Port { what: String },
    #[error("{addr} is used by two listeners ({first} and {second})")]
    DuplicateListener {
        addr: SocketAddr,
        first: String,
        second: String,
    },
    #[error("{0}: forwards to its own listener address")]
    Loop(String),
    #[error("{0}: mTLS is enabled but the outbound has no spiffeId to verify")]
    MissingSpiffeId(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the proxy is draining and accepts no new configuration")]
    Draining,
    #[error("apply_config must be called from within a Tokio runtime")]
    NoRuntime,
}

/// A validated listener.
pub(crate) enum ListenerSpec {
    /// Both boxed: the two configs differ much in size.
    Inbound {
        cfg: Box<InboundConfig>,
        app: SocketAddr,
    },
    Outbound {
        cfg: Box<OutboundConfig>,
        endpoints: Vec<SocketAddr>,
    },
}

impl ListenerSpec {
    pub fn describe(&self) -> String {
        match self {
            ListenerSpec::Inbound { cfg, .. } => format!("inbound {}", cfg.name),
            ListenerSpec::Outbound { cfg, .. } => format!("outbound {}", cfg.service),
        }
    }
}

/// Checks `cfg` and lists its listeners by address.
pub(crate) fn plan(
    opts: &ProxyOptions,
    cfg: &ProxyConfig,
) -> Result<Vec<(SocketAddr, ListenerSpec)>, ConfigError> {
    let mismatch = |want: &str, got: &str| !want.is_empty() && want != got;
    if mismatch(&opts.mesh, &cfg.mesh) || mismatch(&opts.dataplane, &cfg.name) {
        return Err(ConfigError::WrongDataplane {
            mesh: opts.mesh.clone(),
            name: opts.dataplane.clone(),
            got_mesh: cfg.mesh.clone(),
            got_name: cfg.name.clone(),
        });
    }
    let mut out = Vec::with_capacity(cfg.inbounds.len() + cfg.outbounds.len());
    for inbound in &cfg.inbounds {
        let what = format!("inbound {}", inbound.name);
        let listen = socket_addr(&what, &inbound.address, inbound.port)?;
        let app = socket_addr(&what, &inbound.service_address, inbound.service_port)?;
        if app == listen {
            return Err(ConfigError::Loop(what));
        }
        out.push((
            listen,
            ListenerSpec::Inbound {
                cfg: Box::new(inbound.clone()),
                app,
            },
        ));
    }
    // What policies set on each outbound, by listener address.
    let policies: HashMap<(&str, u16), &OutboundPolicies> = cfg
        .outbound_policies
        .iter()
        .map(|p| ((p.address.as_str(), p.port), p))
        .collect();
    for outbound in &cfg.outbounds {
        let what = format!("outbound {}", outbound.service);
        let address = if outbound.address.is_empty() {
            Ipv4Addr::LOCALHOST.to_string()
        } else {
            outbound.address.clone()
        };
        let listen = socket_addr(&what, &address, outbound.port)?;
        if cfg.mtls != MtlsMode::Off && outbound.spiffe_id.is_empty() {
            return Err(ConfigError::MissingSpiffeId(what));
        }
        // One bad endpoint (a name the control plane could not resolve, an address no proxy
        // may dial, the listener itself) is skipped and logged; the rest still serve.
        let endpoints = outbound
            .endpoints
            .iter()
            .filter_map(|e| {
                let skipped = match crate::dial::endpoint(&e.address, e.port) {
                    Ok(addr) if addr == listen => "it is this outbound's own listener".to_owned(),
                    Ok(addr) => return Some(addr),
                    Err(why) => why,
                };
                tracing::warn!(outbound = %outbound.service, dataplane = %e.dataplane, why = %skipped, "skipping an endpoint");
                None
            })
            .collect();
        let mut outbound = outbound.clone();
        if let Some(p) = policies.get(&(address.as_str(), outbound.port)) {
            outbound.timeouts = p.timeouts;
            outbound.retry = p.retry.clone();
            outbound.circuit_breaker = p.circuit_breaker.clone();
            outbound.load_balancer = p.load_balancer.clone();
            outbound.health_check = p.health_check.clone();
            outbound.http_routes = p.http_routes.clone();
            outbound.tcp_routes = p.tcp_routes.clone();
            outbound.access_log = p.access_log.clone();
        }
        out.push((
            listen,
            ListenerSpec::Outbound {
                cfg: Box::new(outbound),
                endpoints,
            },
        ));
    }
    let mut seen: HashMap<SocketAddr, String> = HashMap::new();
    for (addr, spec) in &out {
        if let Some(first) = seen.insert(*addr, spec.describe()) {
            return Err(ConfigError::DuplicateListener {
                addr: *addr,
                first,
                second: spec.describe(),
            });
        }
    }
    Ok(out)
}

fn socket_addr(what: &str, address: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let ip: IpAddr = address.parse().map_err(|_| ConfigError::Address {
        what: what.to_owned(),
        address: address.to_owned(),
    })?;
    if port == 0 {
        return Err(ConfigError::Port {
            what: what.to_owned(),
        });
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshtrafficpermission::InboundAuthz;
    use aerie_core::proxy_config::{Endpoint, Protocol};

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            mesh: "default".into(),
            name: "web-1".into(),
            mtls: MtlsMode::Strict,
            inbounds: vec![InboundConfig {
                name: "web".into(),
                address: "10.0.0.1".into(),
                port: 10001,
                service_address: "127.0.0.1".into(),
                service_port: 8080,
                service: "web".into(),
                protocol: Protocol::Http,
                tags: Default::default(),
                ready: true,
                authz: InboundAuthz::allow_all(10001, "default"),
                timeouts: Default::default(),
                fault_injection: None,
                rate_limit: None,
                access_log: None,
            }],
            outbounds: vec![OutboundConfig {
                load_balancer: None,
                address: String::new(),
                port: 20001,
                service: "backend".into(),
                protocol: Protocol::Tcp,
                spiffe_id: "spiffe://default/backend".into(),
                sni: "backend.default.mesh".into(),
                endpoints: vec![Endpoint {
                    zone: None,
                    address: "10.0.0.2".into(),
                    port: 10001,
                    dataplane: "backend-1".into(),
                    tags: Default::default(),
                }],
                timeouts: Default::default(),
                retry: Default::default(),
                circuit_breaker: Default::default(),
                health_check: None,
                http_routes: None,
                tcp_routes: None,
                access_log: None,
            }],
            outbound_policies: Vec::new(),
            metrics: None,
            tracing: None,
        }
    }

    fn opts() -> ProxyOptions {
        ProxyOptions::new("default", "web-1")
    }

    #[test]
    fn plans_listeners_with_default_outbound_address() {
        let plan = plan(&opts(), &cfg()).unwrap();
        let addrs: Vec<String> = plan.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:10001", "127.0.0.1:20001"]);
    }

    #[test]
    fn skips_endpoints_that_cannot_be_dialled_and_keeps_the_rest() {
        let mut c = cfg();
        let good = c.outbounds[0].endpoints[0].clone();
        for (address, port) in [
            ("backend.mesh", 10001),
            ("169.254.169.254", 80),
            ("::1", 10001),
            ("127.0.0.1", 20001), // the outbound's own listener
        ] {
            c.outbounds[0].endpoints.push(Endpoint {
                zone: None,
                address: address.into(),
                port,
                dataplane: format!("bad-{address}"),
                tags: Default::default(),
            });
        }
        let plan = plan(&opts(), &c).unwrap();
        let Some((_, ListenerSpec::Outbound { endpoints, .. })) = plan.get(1) else {
            panic!("no outbound planned");
        };
        assert_eq!(
            endpoints,
            &[format!("{}:{}", good.address, good.port)
                .parse::<SocketAddr>()
                .unwrap()]
        );
    }

    #[test]
    fn refuses_bad_configs() {
        let mut c = cfg();
        c.name = "other".into();
        assert!(matches!(
            plan(&opts(), &c),
            Err(ConfigError::WrongDataplane { .. })
        ));

        let mut c = cfg();
        c.inbounds[0].address = "web.mesh".into();
        assert!(matches!(
            plan(&opts(), &c),
            Err(ConfigError::Address { .. })
        ));

        let mut c = cfg();
        c.outbounds[0].spiffe_id.clear();
        assert!(matches!(
            plan(&opts(), &c),
            Err(ConfigError::MissingSpiffeId(_))
        ));
        c.mtls = MtlsMode::Off;
        assert!(plan(&opts(), &c).is_ok());

        let mut c = cfg();
        c.outbounds[0].address = "10.0.0.1".into();
        c.outbounds[0].port = 10001;
        assert!(matches!(
            plan(&opts(), &c),
            Err(ConfigError::DuplicateListener { .. })
        ));

        let mut c = cfg();
        c.inbounds[0].service_address = "10.0.0.1".into();
        c.inbounds[0].service_port = 10001;
        assert!(matches!(plan(&opts(), &c), Err(ConfigError::Loop(_))));

        let mut c = cfg();
        c.inbounds[0].port = 0;
        assert!(matches!(plan(&opts(), &c), Err(ConfigError::Port { .. })));
    }
}
