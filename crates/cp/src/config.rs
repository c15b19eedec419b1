//! kuma-cp configuration: Kuma's YAML keys, each overridable by its `KUMA_*` env var.
//!
//! Precedence: defaults < `--config-file` < environment. Every value is checked before the
//! control plane starts; a bad one stops it with a message naming both the YAML key and the
//! env var, so the operator can fix whichever they used.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Whether this control plane is a zone (the default; standalone when it has no global) or
/// the global one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Zone,
    Global,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Zone => "zone",
            Mode::Global => "global",
        }
    }
}

/// Which backend keeps resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreType {
    /// SQLite file under the work dir: persistent, single control plane (Aerie's default).
    Embedded,
    /// Nothing survives a restart.
    Memory,
    /// PostgreSQL: production, several replicas on one database.
    Postgres(Box<PostgresSettings>),
}

/// `store.postgres.*` (Kuma's keys and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db_name: String,
    /// disable | verifyNone | verifyCa | verifyFull
    pub tls_mode: String,
    pub tls_ca_path: Option<PathBuf>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    pub max_open_connections: u32,
    pub connection_timeout: std::time::Duration,
}

/// A listener's interface and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub interface: IpAddr,
    pub port: u16,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub work_dir: PathBuf,
    pub store_type: StoreType,
    /// `None` when disabled.
    pub api_http: Option<Listen>,
    pub api_https: Option<Listen>,
    pub api_https_cert_file: Option<PathBuf>,
    pub api_https_key_file: Option<PathBuf>,
    /// Clients on a loopback address act as admin without a token.
    pub localhost_is_admin: bool,
    /// `apiServer.readHeaderTimeout`: the TLS handshake and each request's head.
    pub api_read_header_timeout: Duration,
    /// `apiServer.readTimeout`: a request's body, from its head.
    pub api_read_timeout: Duration,
    /// `apiServer.writeTimeout`: a request's response, from its head.
    pub api_write_timeout: Duration,
    /// `apiServer.idleTimeout`: a keep-alive connection between requests.
    pub api_idle_timeout: Duration,
    /// `apiServer.maxConnections` (Aerie's): open connections on the HTTP and HTTPS ports together.
    pub api_max_connections: usize,
    pub dp_server_port: u16,
    pub dp_server_cert_file: Option<PathBuf>,
    pub dp_server_key_file: Option<PathBuf>,
    /// `dpServer.readHeaderTimeout`: the TLS handshake and the first gRPC request.
    pub dp_server_read_header_timeout: Duration,
    /// `dpServer.maxConnections` (Aerie's).
    pub dp_server_max_connections: usize,
    pub diagnostics: Listen,
    /// `diagnostics.maxConnections` (Aerie's).
    pub diagnostics_max_connections: usize,
    /// `monitoringAssignmentServer.port` when `.enabled` (MADS and Prometheus HTTP SD);
    /// none on a global control plane, as Kuma.
    pub mads: Option<Listen>,
    /// `monitoringAssignmentServer.defaultFetchTimeout`.
    pub mads_default_fetch_timeout: std::time::Duration,
    pub kds_grpc_port: u16,
    pub skip_mesh_creation: bool,
    /// How long a Dataplane may stay offline before the leader deletes it (Kuma: 72h).
    pub dataplane_cleanup_age: std::time::Duration,
    /// How long a Dataplane's resolved host name is used before it is resolved again.
    pub dns_cache_ttl: std::time::Duration,
    pub zone_name: Option<String>,
    pub multizone: Multizone,
}

/// This control plane's place in a multi-zone deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Multizone {
    /// A zone on its own (no global address): it owns every resource type.
    Standalone,
    /// The global control plane: zones connect to its KDS port.
    Global(GlobalKds),
    /// A zone connected to a global: global-only types are read-only copies here.
    Federated(ZoneKds),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalKds {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Whether zones must present a zone token (`multizone.global.kds.auth.type: cpToken`).
    pub require_zone_token: bool,
    /// `multizone.global.kds.maxMsgSize`: the largest message a zone may send, in bytes.
    pub max_msg_size: usize,
    /// `multizone.global.kds.maxConnections` (Aerie's).
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneKds {
    pub zone: String,
    /// `host:port` of the global's KDS server (from `grpcs://host:port`).
    pub global_address: String,
    pub root_ca_file: Option<PathBuf>,
    pub skip_verify: bool,
    pub token: Option<ZoneToken>,
}

/// Where the zone's token comes from (read when connecting, so a rotated file is picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneToken {
    Inline(String),
    File(PathBuf),
}

impl Config {
    /// The zone name of a federated zone.
    pub fn federated_zone(&self) -> Option<&str> {
        match &self.multizone {
            Multizone::Federated(z) => Some(&z.zone),
            _ => None,
        }
    }
}

/// A refused configuration value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("invalid configuration: {key} ({env}): {reason}")]
    Value {
        key: &'static str,
        env: &'static str,
        reason: String,
    },
}

/// One configuration key: its YAML path, env var and default (as text). Each is a typed
/// constant, so a misspelled key is a compile error rather than a message blaming another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    path: &'static str,
    env: &'static str,
    default: &'static str,
}

/// Declares each key once, as a constant named after its env var, and `KEYS`, all of them.
macro_rules! keys {
    ($($name:ident = $path:literal, $env:literal, $default:literal;)*) => {
        $(const $name: Key = Key { path: $path, env: $env, default: $default };)*
        const KEYS: &[Key] = &[$($name),*];
    };
}

keys! {
    MODE = "mode", "KUMA_MODE", "zone";
    GENERAL_WORK_DIR = "general.workDir", "KUMA_GENERAL_WORK_DIR", "";
    STORE_TYPE = "store.type", "KUMA_STORE_TYPE", "embedded";
    API_SERVER_HTTP_ENABLED = "apiServer.http.enabled", "KUMA_API_SERVER_HTTP_ENABLED", "true";
    API_SERVER_HTTP_INTERFACE = "apiServer.http.interface", "KUMA_API_SERVER_HTTP_INTERFACE", "0.0.0.0";
    API_SERVER_HTTP_PORT = "apiServer.http.port", "KUMA_API_SERVER_HTTP_PORT", "5681";
    API_SERVER_HTTPS_ENABLED = "apiServer.https.enabled", "KUMA_API_SERVER_HTTPS_ENABLED", "true";
    API_SERVER_HTTPS_INTERFACE = "apiServer.https.interface", "KUMA_API_SERVER_HTTPS_INTERFACE", "0.0.0.0";
    API_SERVER_HTTPS_PORT = "apiServer.https.port", "KUMA_API_SERVER_HTTPS_PORT", "5682";
    API_SERVER_HTTPS_TLS_CERT_FILE = "apiServer.https.tlsCertFile", "KUMA_API_SERVER_HTTPS_TLS_CERT_FILE", "";
    API_SERVER_HTTPS_TLS_KEY_FILE = "apiServer.https.tlsKeyFile", "KUMA_API_SERVER_HTTPS_TLS_KEY_FILE", "";
    API_SERVER_AUTHN_LOCALHOST_IS_ADMIN = "apiServer.authn.localhostIsAdmin", "KUMA_API_SERVER_AUTHN_LOCALHOST_IS_ADMIN", "true";
    API_SERVER_READ_HEADER_TIMEOUT = "apiServer.readHeaderTimeout", "KUMA_API_SERVER_READ_HEADER_TIMEOUT", "1s";
    API_SERVER_READ_TIMEOUT = "apiServer.readTimeout", "KUMA_API_SERVER_READ_TIMEOUT", "10s";
    API_SERVER_WRITE_TIMEOUT = "apiServer.writeTimeout", "KUMA_API_SERVER_WRITE_TIMEOUT", "30s";
    API_SERVER_IDLE_TIMEOUT = "apiServer.idleTimeout", "KUMA_API_SERVER_IDLE_TIMEOUT", "2m0s";
    API_SERVER_MAX_CONNECTIONS = "apiServer.maxConnections", "KUMA_API_SERVER_MAX_CONNECTIONS", "4096";
    DP_SERVER_PORT = "dpServer.port", "KUMA_DP_SERVER_PORT", "5678";
    DP_SERVER_TLS_CERT_FILE = "dpServer.tlsCertFile", "KUMA_DP_SERVER_TLS_CERT_FILE", "";
    DP_SERVER_TLS_KEY_FILE = "dpServer.tlsKeyFile", "KUMA_DP_SERVER_TLS_KEY_FILE", "";
    DP_SERVER_READ_HEADER_TIMEOUT = "dpServer.readHeaderTimeout", "KUMA_DP_SERVER_READ_HEADER_TIMEOUT", "5s";
    DP_SERVER_MAX_CONNECTIONS = "dpServer.maxConnections", "KUMA_DP_SERVER_MAX_CONNECTIONS", "10000";
    DIAGNOSTICS_SERVER_PORT = "diagnostics.serverPort", "KUMA_DIAGNOSTICS_SERVER_PORT", "5680";
    DIAGNOSTICS_MAX_CONNECTIONS = "diagnostics.maxConnections", "KUMA_DIAGNOSTICS_MAX_CONNECTIONS", "1024";
    MADS_ENABLED = "monitoringAssignmentServer.enabled", "KUMA_MONITORING_ASSIGNMENT_SERVER_ENABLED", "true";
    MADS_PORT = "monitoringAssignmentServer.port", "KUMA_MONITORING_ASSIGNMENT_SERVER_PORT", "5676";
    MADS_DEFAULT_FETCH_TIMEOUT = "monitoringAssignmentServer.defaultFetchTimeout", "KUMA_MONITORING_ASSIGNMENT_SERVER_DEFAULT_FETCH_TIMEOUT", "30s";
    MULTIZONE_GLOBAL_KDS_GRPC_PORT = "multizone.global.kds.grpcPort", "KUMA_MULTIZONE_GLOBAL_KDS_GRPC_PORT", "5685";
    MULTIZONE_ZONE_NAME = "multizone.zone.name", "KUMA_MULTIZONE_ZONE_NAME", "";
    MULTIZONE_ZONE_GLOBAL_ADDRESS = "multizone.zone.globalAddress", "KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "";
    MULTIZONE_ZONE_KDS_ROOT_CA_FILE = "multizone.zone.kds.rootCaFile", "KUMA_MULTIZONE_ZONE_KDS_ROOT_CA_FILE", "";
    MULTIZONE_ZONE_KDS_TLS_SKIP_VERIFY = "multizone.zone.kds.tlsSkipVerify", "KUMA_MULTIZONE_ZONE_KDS_TLS_SKIP_VERIFY", "false";
    MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE = "multizone.zone.kds.auth.cpToken.inline", "KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE", "";
    MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_PATH = "multizone.zone.kds.auth.cpToken.path", "KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_PATH", "";
    MULTIZONE_GLOBAL_KDS_TLS_CERT_FILE = "multizone.global.kds.tlsCertFile", "KUMA_MULTIZONE_GLOBAL_KDS_TLS_CERT_FILE", "";
    MULTIZONE_GLOBAL_KDS_TLS_KEY_FILE = "multizone.global.kds.tlsKeyFile", "KUMA_MULTIZONE_GLOBAL_KDS_TLS_KEY_FILE", "";
    MULTIZONE_GLOBAL_KDS_MAX_MSG_SIZE = "multizone.global.kds.maxMsgSize", "KUMA_MULTIZONE_GLOBAL_KDS_MAX_MSG_SIZE", "10485760";
    MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS = "multizone.global.kds.maxConnections", "KUMA_MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS", "1024";
    MULTIZONE_GLOBAL_KDS_AUTH_TYPE = "multizone.global.kds.auth.type", "KUMA_MULTIZONE_GLOBAL_KDS_AUTH_TYPE", "cpToken";
    STORE_POSTGRES_HOST = "store.postgres.host", "KUMA_STORE_POSTGRES_HOST", "127.0.0.1";
    STORE_POSTGRES_PORT = "store.postgres.port", "KUMA_STORE_POSTGRES_PORT", "15432";
    STORE_POSTGRES_USER = "store.postgres.user", "KUMA_STORE_POSTGRES_USER", "kuma";
    STORE_POSTGRES_PASSWORD = "store.postgres.password", "KUMA_STORE_POSTGRES_PASSWORD", "kuma";
    STORE_POSTGRES_DB_NAME = "store.postgres.dbName", "KUMA_STORE_POSTGRES_DB_NAME", "kuma";
    STORE_POSTGRES_TLS_MODE = "store.postgres.tls.mode", "KUMA_STORE_POSTGRES_TLS_MODE", "disable";
    STORE_POSTGRES_TLS_CA_PATH = "store.postgres.tls.caPath", "KUMA_STORE_POSTGRES_TLS_CA_PATH", "";
    STORE_POSTGRES_TLS_CERT_PATH = "store.postgres.tls.certPath", "KUMA_STORE_POSTGRES_TLS_CERT_PATH", "";
    STORE_POSTGRES_TLS_KEY_PATH = "store.postgres.tls.keyPath", "KUMA_STORE_POSTGRES_TLS_KEY_PATH", "";
    STORE_POSTGRES_MAX_OPEN_CONNECTIONS = "store.postgres.maxOpenConnections", "KUMA_STORE_POSTGRES_MAX_OPEN_CONNECTIONS", "50";
    STORE_POSTGRES_CONNECTION_TIMEOUT = "store.postgres.connectionTimeout", "KUMA_STORE_POSTGRES_CONNECTION_TIMEOUT", "5";
    GENERAL_DNS_CACHE_TTL = "general.dnsCacheTTL", "KUMA_GENERAL_DNS_CACHE_TTL", "10s";
    RUNTIME_UNIVERSAL_DATAPLANE_CLEANUP_AGE = "runtime.universal.dataplaneCleanupAge", "KUMA_RUNTIME_UNIVERSAL_DATAPLANE_CLEANUP_AGE", "72h";
    DEFAULTS_SKIP_MESH_CREATION = "defaults.skipMeshCreation", "KUMA_DEFAULTS_SKIP_MESH_CREATION", "false";
}

/// The longest timeout accepted (longer ones are mistakes, and would overflow clocks).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The largest connection cap accepted.
const MAX_CONNECTIONS: usize = 1_000_000;

/// Raw values by YAML path, after applying the file and the environment.
struct Raw(BTreeMap<&'static str, String>);

impl Raw {
    fn get(&self, key: Key) -> &str {
        self.0.get(key.path).map(String::as_str).unwrap_or("")
    }

    fn err(&self, key: Key, reason: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            key: key.path,
            env: key.env,
            reason: reason.into(),
        }
    }

    fn bool(&self, path: Key) -> Result<bool, ConfigError> {
        match self.get(path) {
            "true" | "True" | "TRUE" | "1" => Ok(true),
            "false" | "False" | "FALSE" | "0" => Ok(false),
            v => Err(self.err(path, format!("\"{v}\" is not a boolean (true or false)"))),
        }
    }

    fn port(&self, path: Key) -> Result<u16, ConfigError> {
        let v = self.get(path);
        match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(self.err(path, format!("\"{v}\" is not a port number (1-65535)"))),
        }
    }

    fn ip(&self, path: Key) -> Result<IpAddr, ConfigError> {
        let v = self.get(path);
        v.parse()
            .map_err(|_| self.err(path, format!("\"{v}\" is not an IP address")))
    }

    /// A Go-style duration (`1s`, `2m0s`) above zero: zero would turn a protection off.
    fn timeout(&self, path: Key) -> Result<Duration, ConfigError> {
        let v = self.get(path);
        match aerie_core::duration::parse_go_duration(v) {
            Some(d) if d.is_zero() => Err(self.err(
                path,
                "must be greater than 0 (a zero timeout would let a client hold a connection for ever)",
            )),
            Some(d) if d > MAX_TIMEOUT => Err(self.err(path, format!("\"{v}\" is longer than 24h"))),
            Some(d) => Ok(d),
            None => Err(self.err(path, format!("\"{v}\" is not a duration (e.g. 1s, 2m0s)"))),
        }
    }

    /// A whole number in `min..=max`.
    fn count(&self, path: Key, min: usize, max: usize) -> Result<usize, ConfigError> {
        let v = self.get(path);
        match v.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.err(
                path,
                format!("\"{v}\" is not a whole number between {min} and {max}"),
            )),
        }
    }

    fn path(&self, path: Key) -> Option<PathBuf> {
        Some(self.get(path))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }
}

impl Config {
    /// Loads from an optional YAML file and the given environment (usually `std::env::vars()`).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut raw = Raw(KEYS
            .iter()
            .map(|k| (k.path, k.default.to_string()))
            .collect());
        if let Some(path) = file {
            let file_err = |reason: String| ConfigError::File {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
            let doc = if text.trim().is_empty() {
                Value::Null
            } else {
                aerie_core::format::parse_yaml_value(&text).map_err(|e| file_err(e.to_string()))?
            };
            for k in KEYS {
                if let Some(v) = lookup(&doc, k.path) {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => continue,
                        _ => {
                            return Err(
                                raw.err(*k, "must be a single value, not a list or mapping")
                            );
                        }
                    };
                    raw.0.insert(k.path, text);
                }
            }
        }
        for (name, value) in env {
            if let Some(k) = KEYS.iter().find(|k| k.env == name) {
                raw.0.insert(k.path, value);
            }
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &Raw) -> Result<Config, ConfigError> {
        let mode = match raw.get(MODE) {
            "zone" | "" => Mode::Zone,
            "global" => Mode::Global,
            "standalone" => Mode::Zone,
            v => return Err(raw.err(MODE, format!("\"{v}\" is not a mode: use zone or global"))),
        };
        let multizone = multizone_settings(raw, mode)?;
        let store_type = match raw.get(STORE_TYPE) {
            "embedded" | "" => StoreType::Embedded,
            "memory" => StoreType::Memory,
            "postgres" => StoreType::Postgres(Box::new(postgres_settings(raw)?)),
            v => {
                return Err(raw.err(
                    STORE_TYPE,
                    format!("\"{v}\" is not a store type: use embedded, memory or postgres"),
                ));
            }
        };
        let work_dir = match raw.path(GENERAL_WORK_DIR) {
            Some(p) => p,
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".kuma"),
                None => return Err(raw.err(GENERAL_WORK_DIR, "not set and $HOME is unknown")),
            },
        };
        let listen = |enabled: Key, iface: Key, port: Key| -> Result<Option<Listen>, ConfigError> {
            if !raw.bool(enabled)? {
                return Ok(None);
            }
            Ok(Some(Listen {
                interface: raw.ip(iface)?,
                port: raw.port(port)?,
            }))
        };
        let api_http = listen(
            API_SERVER_HTTP_ENABLED,
            API_SERVER_HTTP_INTERFACE,
            API_SERVER_HTTP_PORT,
        )?;
        let api_https = listen(
            API_SERVER_HTTPS_ENABLED,
            API_SERVER_HTTPS_INTERFACE,
            API_SERVER_HTTPS_PORT,
        )?;
        let cert = raw.path(API_SERVER_HTTPS_TLS_CERT_FILE);
        let key = raw.path(API_SERVER_HTTPS_TLS_KEY_FILE);
        if cert.is_some() != key.is_some() {
            let missing = if cert.is_none() {
                API_SERVER_HTTPS_TLS_CERT_FILE
            } else {
                API_SERVER_HTTPS_TLS_KEY_FILE
            };
            return Err(raw.err(
                missing,
                "the HTTPS certificate and key must be set together",
            ));
        }
        let dp_cert = raw.path(DP_SERVER_TLS_CERT_FILE);
        let dp_key = raw.path(DP_SERVER_TLS_KEY_FILE);
        if dp_cert.is_some() != dp_key.is_some() {
            let missing = if dp_cert.is_none() {
                DP_SERVER_TLS_CERT_FILE
            } else {
                DP_SERVER_TLS_KEY_FILE
            };
            return Err(raw.err(
                missing,
                "the DP server certificate and key must be set together",
            ));
        }
        let mut config = Config {
            mode,
            work_dir,
            store_type,
            api_http,
            api_https,
            api_https_cert_file: cert,
            api_https_key_file: key,
            localhost_is_admin: raw.bool(API_SERVER_AUTHN_LOCALHOST_IS_ADMIN)?,
            api_read_header_timeout: raw.timeout(API_SERVER_READ_HEADER_TIMEOUT)?,
            api_read_timeout: raw.timeout(API_SERVER_READ_TIMEOUT)?,
            api_write_timeout: raw.timeout(API_SERVER_WRITE_TIMEOUT)?,
            api_idle_timeout: raw.timeout(API_SERVER_IDLE_TIMEOUT)?,
            api_max_connections: raw.count(API_SERVER_MAX_CONNECTIONS, 1, MAX_CONNECTIONS)?,
            dp_server_port: raw.port(DP_SERVER_PORT)?,
            dp_server_cert_file: dp_cert,
            dp_server_key_file: dp_key,
            dp_server_read_header_timeout: raw.timeout(DP_SERVER_READ_HEADER_TIMEOUT)?,
            dp_server_max_connections: raw.count(DP_SERVER_MAX_CONNECTIONS, 1, MAX_CONNECTIONS)?,
            diagnostics: Listen {
                interface: IpAddr::from([0, 0, 0, 0]),
                port: raw.port(DIAGNOSTICS_SERVER_PORT)?,
            },
            diagnostics_max_connections: raw.count(
                DIAGNOSTICS_MAX_CONNECTIONS,
                1,
                MAX_CONNECTIONS,
            )?,
            mads: None,
            mads_default_fetch_timeout: raw.timeout(MADS_DEFAULT_FETCH_TIMEOUT)?,
            kds_grpc_port: raw.port(MULTIZONE_GLOBAL_KDS_GRPC_PORT)?,
            skip_mesh_creation: raw.bool(DEFAULTS_SKIP_MESH_CREATION)?,
            dataplane_cleanup_age: {
                let v = raw.get(RUNTIME_UNIVERSAL_DATAPLANE_CLEANUP_AGE);
                aerie_core::duration::parse_go_duration(v)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        raw.err(
                            RUNTIME_UNIVERSAL_DATAPLANE_CLEANUP_AGE,
                            format!("\"{v}\" is not a duration (e.g. 72h)"),
                        )
                    })?
            },
            dns_cache_ttl: {
                let v = raw.get(GENERAL_DNS_CACHE_TTL);
                aerie_core::duration::parse_go_duration(v)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        raw.err(
                            GENERAL_DNS_CACHE_TTL,
                            format!("\"{v}\" is not a duration (e.g. 10s)"),
                        )
                    })?
            },
            zone_name: Some(raw.get(MULTIZONE_ZONE_NAME).to_string()).filter(|z| !z.is_empty()),
            multizone,
        };
        // As Kuma: no MADS on a global control plane (it has no proxies).
        if raw.bool(MADS_ENABLED)? && !matches!(config.multizone, Multizone::Global(_)) {
            config.mads = Some(Listen {
                interface: IpAddr::from([0, 0, 0, 0]),
                port: raw.port(MADS_PORT)?,
            });
        }
        config.check_port_clashes(raw)?;
        Ok(config)
    }

    /// Two of our listeners on one port would fail at bind time with a vaguer message.
    fn check_port_clashes(&self, raw: &Raw) -> Result<(), ConfigError> {
        let mut seen: Vec<(Key, u16)> = Vec::new();
        let mut ports = vec![
            (DP_SERVER_PORT, self.dp_server_port),
            (DIAGNOSTICS_SERVER_PORT, self.diagnostics.port),
        ];
        if let Some(l) = self.mads {
            ports.push((MADS_PORT, l.port));
        }
        if let Some(l) = self.api_http {
            ports.push((API_SERVER_HTTP_PORT, l.port));
        }
        if matches!(self.multizone, Multizone::Global(_)) {
            ports.push((MULTIZONE_GLOBAL_KDS_GRPC_PORT, self.kds_grpc_port));
        }
        if let Some(l) = self.api_https {
            ports.push((API_SERVER_HTTPS_PORT, l.port));
        }
        for (path, port) in ports {
            if let Some((other, _)) = seen.iter().find(|(_, p)| *p == port) {
                return Err(raw.err(
                    path,
                    format!("port {port} is already used by {}", other.path),
                ));
            }
            seen.push((path, port));
        }
        Ok(())
    }

    /// Where the embedded store keeps its database.
    pub fn database_path(&self) -> PathBuf {
        self.work_dir.join("aerie.db")
    }
}

fn postgres_settings(raw: &Raw) -> Result<PostgresSettings, ConfigError> {
    let tls_mode = raw.get(STORE_POSTGRES_TLS_MODE).to_string();
    if !["disable", "verifyNone", "verifyCa", "verifyFull"].contains(&tls_mode.as_str()) {
        return Err(raw.err(
            STORE_POSTGRES_TLS_MODE,
            format!("\"{tls_mode}\" is not one of disable, verifyNone, verifyCa, verifyFull"),
        ));
    }
    let max: u32 = raw
        .get(STORE_POSTGRES_MAX_OPEN_CONNECTIONS)
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            raw.err(
                STORE_POSTGRES_MAX_OPEN_CONNECTIONS,
                format!(
                    "\"{}\" is not a positive number",
                    raw.get(STORE_POSTGRES_MAX_OPEN_CONNECTIONS)
                ),
            )
        })?;
    // Kuma takes whole seconds; a Go-style duration (10s) is accepted too.
    let timeout_text = raw.get(STORE_POSTGRES_CONNECTION_TIMEOUT);
    let connection_timeout = timeout_text
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
        .or_else(|| aerie_core::duration::parse_go_duration(timeout_text))
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            raw.err(
                STORE_POSTGRES_CONNECTION_TIMEOUT,
                format!("\"{timeout_text}\" is not a number of seconds"),
            )
        })?;
    let need = |path: Key| -> Result<String, ConfigError> {
        let v = raw.get(path);
        if v.is_empty() {
            Err(raw.err(path, "cannot be empty"))
        } else {
            Ok(v.to_string())
        }
    };
    Ok(PostgresSettings {
        host: need(STORE_POSTGRES_HOST)?,
        port: raw.port(STORE_POSTGRES_PORT)?,
        user: need(STORE_POSTGRES_USER)?,
        password: raw.get(STORE_POSTGRES_PASSWORD).to_string(),
        db_name: need(STORE_POSTGRES_DB_NAME)?,
        tls_mode,
        tls_ca_path: raw.path(STORE_POSTGRES_TLS_CA_PATH),
        tls_cert_path: raw.path(STORE_POSTGRES_TLS_CERT_PATH),
        tls_key_path: raw.path(STORE_POSTGRES_TLS_KEY_PATH),
        max_open_connections: max,
        connection_timeout,
    })
}

fn multizone_settings(raw: &Raw, mode: Mode) -> Result<Multizone, ConfigError> {
    let address = raw.get(MULTIZONE_ZONE_GLOBAL_ADDRESS);
    match mode {
        Mode::Global => {
            if !address.is_empty() {
                return Err(raw.err(
                    MULTIZONE_ZONE_GLOBAL_ADDRESS,
                    "is for zone control planes; a global control plane has no global above it",
                ));
            }
            let cert = raw.path(MULTIZONE_GLOBAL_KDS_TLS_CERT_FILE);
            let key = raw.path(MULTIZONE_GLOBAL_KDS_TLS_KEY_FILE);
            if cert.is_some() != key.is_some() {
                let missing = if cert.is_none() {
                    MULTIZONE_GLOBAL_KDS_TLS_CERT_FILE
                } else {
                    MULTIZONE_GLOBAL_KDS_TLS_KEY_FILE
                };
                return Err(raw.err(missing, "the KDS certificate and key must be set together"));
            }
            let require_zone_token = match raw.get(MULTIZONE_GLOBAL_KDS_AUTH_TYPE) {
                "cpToken" | "" => true,
                "none" => false,
                v => {
                    return Err(raw.err(
                        MULTIZONE_GLOBAL_KDS_AUTH_TYPE,
                        format!("\"{v}\" is not an authentication type: use cpToken or none"),
                    ));
                }
            };
            Ok(Multizone::Global(GlobalKds {
                cert_file: cert,
                key_file: key,
                require_zone_token,
                // At least 64 KiB (a zone's first messages), at most 1 GiB.
                max_msg_size: raw.count(MULTIZONE_GLOBAL_KDS_MAX_MSG_SIZE, 64 * 1024, 1 << 30)?,
                max_connections: raw.count(
                    MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS,
                    1,
                    MAX_CONNECTIONS,
                )?,
            }))
        }
        Mode::Zone if address.is_empty() => Ok(Multizone::Standalone),
        Mode::Zone => {
            let zone = raw.get(MULTIZONE_ZONE_NAME);
            if zone.is_empty() {
                return Err(raw.err(
                    MULTIZONE_ZONE_NAME,
                    "a zone connected to a global control plane needs a name",
                ));
            }
            if !aerie_core::validate::is_valid_zone_name(zone) {
                return Err(raw.err(
                    MULTIZONE_ZONE_NAME,
                    format!("\"{zone}\" is not a valid zone name (lower-case letters, digits and '-', at most 63 characters)"),
                ));
            }
            let global_address = match address.strip_prefix("grpcs://") {
                Some(rest) if !rest.is_empty() && !rest.contains('/') => {
                    if rest
                        .rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    {
                        rest.to_string()
                    } else {
                        format!("{rest}:5685")
                    }
                }
                _ => {
                    return Err(raw.err(
                        MULTIZONE_ZONE_GLOBAL_ADDRESS,
                        format!("\"{address}\" is not a KDS address: use grpcs://HOST:5685"),
                    ));
                }
            };
            let root_ca_file = raw.path(MULTIZONE_ZONE_KDS_ROOT_CA_FILE);
            let skip_verify = raw.bool(MULTIZONE_ZONE_KDS_TLS_SKIP_VERIFY)?;
            if root_ca_file.is_none() && !skip_verify {
                return Err(raw.err(
                    MULTIZONE_ZONE_KDS_ROOT_CA_FILE,
                    "set the global's KDS CA certificate (or multizone.zone.kds.tlsSkipVerify=true to connect without verifying the global, not for production)",
                ));
            }
            let inline = raw.get(MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE);
            let token = match (
                inline.is_empty(),
                raw.path(MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_PATH),
            ) {
                (false, Some(_)) => {
                    return Err(raw.err(
                        MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_PATH,
                        "set either the inline zone token or its path, not both",
                    ));
                }
                (false, None) => Some(ZoneToken::Inline(inline.trim().to_string())),
                (true, Some(p)) => Some(ZoneToken::File(p)),
                (true, None) => None,
            };
            Ok(Multizone::Federated(ZoneKds {
                zone: zone.to_string(),
                global_address,
                root_ca_file,
                skip_verify,
                token,
            }))
        }
    }
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_has_its_own_path_and_env_var() {
        let mut paths: Vec<&str> = KEYS.iter().map(|k| k.path).collect();
        let mut envs: Vec<&str> = KEYS.iter().map(|k| k.env).collect();
        paths.sort_unstable();
        paths.dedup();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!((paths.len(), envs.len()), (KEYS.len(), KEYS.len()));
        assert!(KEYS.iter().all(|k| k.env.starts_with("KUMA_")));
    }

    #[test]
    fn defaults_are_kumas_ports() {
        let c = Config::load(None, env(&[("KUMA_GENERAL_WORK_DIR", "/tmp/x")])).unwrap();
        assert_eq!(c.mode, Mode::Zone);
        assert_eq!(c.store_type, StoreType::Embedded);
        assert_eq!(c.api_http.unwrap().port, 5681);
        assert_eq!(c.api_https.unwrap().port, 5682);
        assert_eq!(c.dp_server_port, 5678);
        assert_eq!(c.diagnostics.port, 5680);
        assert_eq!(c.kds_grpc_port, 5685);
        assert!(!c.skip_mesh_creation);
        assert_eq!(c.database_path(), PathBuf::from("/tmp/x/aerie.db"));
    }

    #[test]
    fn connection_limits_use_kumas_keys_and_defaults() {
        let c = Config::load(None, env(&[("KUMA_GENERAL_WORK_DIR", "/tmp/x")])).unwrap();
        assert_eq!(c.api_read_header_timeout, Duration::from_secs(1));
        assert_eq!(c.api_read_timeout, Duration::from_secs(10));
        assert_eq!(c.api_write_timeout, Duration::from_secs(30));
        assert_eq!(c.api_idle_timeout, Duration::from_secs(120));
        assert_eq!(c.api_max_connections, 4096);
        assert_eq!(c.dp_server_read_header_timeout, Duration::from_secs(5));
        assert_eq!(c.dp_server_max_connections, 10000);
        assert_eq!(c.diagnostics_max_connections, 1024);
        let c = Config::load(
            None,
            env(&[
                ("KUMA_GENERAL_WORK_DIR", "/tmp/x"),
                ("KUMA_API_SERVER_READ_HEADER_TIMEOUT", "3s"),
                ("KUMA_API_SERVER_IDLE_TIMEOUT", "1m30s"),
                ("KUMA_DP_SERVER_READ_HEADER_TIMEOUT", "500ms"),
                ("KUMA_API_SERVER_MAX_CONNECTIONS", "20"),
                ("KUMA_DP_SERVER_TLS_CERT_FILE", "/c"),
                ("KUMA_DP_SERVER_TLS_KEY_FILE", "/k"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api_read_header_timeout, Duration::from_secs(3));
        assert_eq!(c.api_idle_timeout, Duration::from_secs(90));
        assert_eq!(c.dp_server_read_header_timeout, Duration::from_millis(500));
        assert_eq!(c.api_max_connections, 20);
        assert_eq!(c.dp_server_cert_file, Some(PathBuf::from("/c")));
        assert_eq!(c.dp_server_key_file, Some(PathBuf::from("/k")));
        let err = Config::load(
            None,
            env(&[
                ("KUMA_GENERAL_WORK_DIR", "/w"),
                ("KUMA_DP_SERVER_TLS_CERT_FILE", "/c"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("dpServer.tlsKeyFile (KUMA_DP_SERVER_TLS_KEY_FILE)"),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cp.yaml");
        std::fs::write(&f, "apiServer:\n  http:\n    port: 7000\n    interface: 127.0.0.1\nstore:\n  type: memory\n").unwrap();
        let c = Config::load(Some(&f), env(&[("KUMA_API_SERVER_HTTP_PORT", "7001")])).unwrap();
        assert_eq!(c.api_http.unwrap().port, 7001);
        assert_eq!(c.api_http.unwrap().interface.to_string(), "127.0.0.1");
        assert_eq!(c.store_type, StoreType::Memory);
    }

    #[test]
    fn multizone_settings() {
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("KUMA_GENERAL_WORK_DIR", "/w")];
            all.extend_from_slice(pairs);
            Config::load(None, env(&all))
        };
        assert_eq!(load(&[]).unwrap().multizone, Multizone::Standalone);
        let g = load(&[("KUMA_MODE", "global")]).unwrap();
        assert_eq!(
            g.multizone,
            Multizone::Global(GlobalKds {
                cert_file: None,
                key_file: None,
                require_zone_token: true,
                max_msg_size: 10 * 1024 * 1024,
                max_connections: 1024,
            })
        );
        let g = load(&[
            ("KUMA_MODE", "global"),
            ("KUMA_MULTIZONE_GLOBAL_KDS_AUTH_TYPE", "none"),
        ])
        .unwrap();
        assert!(matches!(
            g.multizone,
            Multizone::Global(GlobalKds {
                require_zone_token: false,
                ..
            })
        ));
        let z = load(&[
            ("KUMA_MULTIZONE_ZONE_NAME", "zone-1"),
            (
                "KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS",
                "grpcs://global.example.com",
            ),
            ("KUMA_MULTIZONE_ZONE_KDS_TLS_SKIP_VERIFY", "true"),
            ("KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_PATH", "/t"),
        ])
        .unwrap();
        assert_eq!(z.federated_zone(), Some("zone-1"));
        let Multizone::Federated(zk) = &z.multizone else {
            panic!("{:?}", z.multizone)
        };
        assert_eq!(zk.global_address, "global.example.com:5685");
        assert_eq!(zk.token, Some(ZoneToken::File("/t".into())));
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "grpcs://g:5685")],
                "multizone.zone.name (KUMA_MULTIZONE_ZONE_NAME)",
            ),
            (
                &[
                    ("KUMA_MULTIZONE_ZONE_NAME", "Zone_1"),
                    ("KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "grpcs://g:5685"),
                ],
                "not a valid zone name",
            ),
            (
                &[
                    ("KUMA_MULTIZONE_ZONE_NAME", "z"),
                    ("KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "http://g:5685"),
                ],
                "use grpcs://HOST:5685",
            ),
            (
                &[
                    ("KUMA_MULTIZONE_ZONE_NAME", "z"),
                    ("KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "grpcs://g:5685"),
                ],
                "multizone.zone.kds.rootCaFile",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_GLOBAL_KDS_AUTH_TYPE", "magic"),
                ],
                "use cpToken or none",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS", "grpcs://g:5685"),
                ],
                "no global above it",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_GLOBAL_KDS_TLS_CERT_FILE", "/c"),
                ],
                "multizone.global.kds.tlsKeyFile",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_GLOBAL_KDS_GRPC_PORT", "5681"),
                ],
                "already used",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_GLOBAL_KDS_MAX_MSG_SIZE", "100"),
                ],
                "multizone.global.kds.maxMsgSize (KUMA_MULTIZONE_GLOBAL_KDS_MAX_MSG_SIZE)",
            ),
            (
                &[
                    ("KUMA_MODE", "global"),
                    ("KUMA_MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS", "0"),
                ],
                "multizone.global.kds.maxConnections (KUMA_MULTIZONE_GLOBAL_KDS_MAX_CONNECTIONS)",
            ),
        ];
        for (pairs, want) in cases {
            let err = load(pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "KUMA_API_SERVER_HTTP_PORT",
                "abc",
                "apiServer.http.port (KUMA_API_SERVER_HTTP_PORT)",
            ),
            (
                "KUMA_DP_SERVER_PORT",
                "70000",
                "dpServer.port (KUMA_DP_SERVER_PORT)",
            ),
            ("KUMA_MODE", "nope", "mode (KUMA_MODE)"),
            ("KUMA_STORE_TYPE", "redis", "store.type (KUMA_STORE_TYPE)"),
            (
                "KUMA_DEFAULTS_SKIP_MESH_CREATION",
                "maybe",
                "defaults.skipMeshCreation",
            ),
            (
                "KUMA_API_SERVER_HTTP_INTERFACE",
                "localhost:1",
                "apiServer.http.interface",
            ),
            (
                "KUMA_DIAGNOSTICS_SERVER_PORT",
                "5681",
                "diagnostics.serverPort",
            ),
            (
                "KUMA_API_SERVER_READ_HEADER_TIMEOUT",
                "0s",
                "apiServer.readHeaderTimeout (KUMA_API_SERVER_READ_HEADER_TIMEOUT): must be greater than 0",
            ),
            (
                "KUMA_API_SERVER_IDLE_TIMEOUT",
                "soon",
                "apiServer.idleTimeout (KUMA_API_SERVER_IDLE_TIMEOUT): \"soon\" is not a duration",
            ),
            (
                "KUMA_API_SERVER_WRITE_TIMEOUT",
                "25h",
                "apiServer.writeTimeout (KUMA_API_SERVER_WRITE_TIMEOUT)",
            ),
            (
                "KUMA_API_SERVER_READ_TIMEOUT",
                "10",
                "apiServer.readTimeout (KUMA_API_SERVER_READ_TIMEOUT)",
            ),
            (
                "KUMA_DP_SERVER_READ_HEADER_TIMEOUT",
                "-1s",
                "dpServer.readHeaderTimeout (KUMA_DP_SERVER_READ_HEADER_TIMEOUT)",
            ),
            (
                "KUMA_API_SERVER_MAX_CONNECTIONS",
                "0",
                "apiServer.maxConnections (KUMA_API_SERVER_MAX_CONNECTIONS)",
            ),
            (
                "KUMA_DP_SERVER_MAX_CONNECTIONS",
                "lots",
                "dpServer.maxConnections (KUMA_DP_SERVER_MAX_CONNECTIONS)",
            ),
            (
                "KUMA_DIAGNOSTICS_MAX_CONNECTIONS",
                "2000000",
                "diagnostics.maxConnections (KUMA_DIAGNOSTICS_MAX_CONNECTIONS)",
            ),
        ];
        for (k, v, want) in cases {
            let err = Config::load(None, env(&[(k, v), ("KUMA_GENERAL_WORK_DIR", "/w")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn bad_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cp.yaml");
        std::fs::write(&f, "apiServer: [unclosed\n").unwrap();
        let err = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("cp.yaml"), "{err}");
        let err = Config::load(Some(&dir.path().join("missing.yaml")), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yaml"), "{err}");
    }

    #[test]
    fn postgres_settings_use_kumas_keys() {
        let base = [
            ("KUMA_STORE_TYPE", "postgres"),
            ("KUMA_GENERAL_WORK_DIR", "/w"),
        ];
        let c = Config::load(None, env(&base)).unwrap();
        let StoreType::Postgres(pg) = c.store_type else {
            panic!("not postgres")
        };
        assert_eq!(
            (
                pg.host.as_str(),
                pg.port,
                pg.user.as_str(),
                pg.db_name.as_str()
            ),
            ("127.0.0.1", 15432, "kuma", "kuma")
        );
        assert_eq!(pg.max_open_connections, 50);
        let mut with = base.to_vec();
        with.extend([
            ("KUMA_STORE_POSTGRES_PORT", "5432"),
            ("KUMA_STORE_POSTGRES_DB_NAME", "test"),
            ("KUMA_STORE_POSTGRES_CONNECTION_TIMEOUT", "10s"),
        ]);
        let StoreType::Postgres(pg) = Config::load(None, env(&with)).unwrap().store_type else {
            panic!()
        };
        assert_eq!(
            (
                pg.port,
                pg.db_name.as_str(),
                pg.connection_timeout.as_secs()
            ),
            (5432, "test", 10)
        );
        for (k, v, want) in [
            (
                "KUMA_STORE_POSTGRES_TLS_MODE",
                "sometimes",
                "store.postgres.tls.mode",
            ),
            ("KUMA_STORE_POSTGRES_PORT", "x", "KUMA_STORE_POSTGRES_PORT"),
            (
                "KUMA_STORE_POSTGRES_MAX_OPEN_CONNECTIONS",
                "0",
                "maxOpenConnections",
            ),
            ("KUMA_STORE_POSTGRES_HOST", "", "store.postgres.host"),
        ] {
            let mut bad = base.to_vec();
            bad.push((k, v));
            let err = Config::load(None, env(&bad)).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }
}
