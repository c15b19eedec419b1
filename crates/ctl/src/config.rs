//! kumactl's configuration file (`~/.kumactl/config`), in Kuma's format:
//!
//! ```yaml
//! contexts:
//! - name: local
//!   controlPlane: local
//! controlPlanes:
//! - name: local
//!   coordinates:
//!     apiServer:
//!       url: http://localhost:5681
//! currentContext: local
//! ```
//!
//! Fields this client does not use (`defaults`, `headers`, client certificates, ...) are kept
//! as they are when the file is rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The control plane kumactl talks to when there is no configuration file.
pub const DEFAULT_URL: &str = "http://localhost:5681";
/// Name of the default context and control plane.
pub const DEFAULT_NAME: &str = "local";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub contexts: Vec<Context>,
    #[serde(default)]
    pub control_planes: Vec<ControlPlane>,
    #[serde(default)]
    pub current_context: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    pub name: String,
    #[serde(default)]
    pub control_plane: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    pub name: String,
    #[serde(default)]
    pub coordinates: Coordinates,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coordinates {
    #[serde(default)]
    pub api_server: ApiServer,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auth_conf: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_verify: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ApiServer {
    pub fn new(url: impl Into<String>) -> Self {
        ApiServer {
            url: url.into(),
            ..ApiServer::default()
        }
    }

    /// The bearer token to send, when the control plane entry uses `authType: tokens`.
    pub fn token(&self) -> Option<&str> {
        match self.auth_type.as_deref() {
            Some("tokens") => self.auth_conf.get("token").map(String::as_str),
            _ => None,
        }
    }
}

impl Default for Config {
    /// What kumactl uses with no configuration file: the `local` control plane.
    fn default() -> Self {
        Config {
            contexts: vec![Context {
                name: DEFAULT_NAME.into(),
                control_plane: DEFAULT_NAME.into(),
                extra: Map::new(),
            }],
            control_planes: vec![ControlPlane {
                name: DEFAULT_NAME.into(),
                coordinates: Coordinates {
                    api_server: ApiServer::new(DEFAULT_URL),
                    extra: Map::new(),
                },
                extra: Map::new(),
            }],
            current_context: DEFAULT_NAME.into(),
            extra: Map::new(),
        }
    }
}

impl Config {
    /// Parses the text of a configuration file (YAML or JSON). An empty file is an empty
    /// configuration.
    pub fn parse(text: &str) -> Result<Config> {
        let docs = aerie_core::format::parse_yaml_documents(text).map_err(|e| anyhow!("{e}"))?;
        let Some(doc) = docs.into_iter().next() else {
            return Ok(Config {
                contexts: vec![],
                control_planes: vec![],
                current_context: String::new(),
                extra: Map::new(),
            });
        };
        serde_json::from_value(doc).map_err(|e| anyhow!("{e}"))
    }

    /// The file as kumactl writes it.
    pub fn to_yaml(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        aerie_core::format::to_yaml(&v)
    }

    /// Reads the file; a missing file gives [`Config::default`].
    pub fn load(path: &Path) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).with_context(|| {
                format!("could not read the configuration file {}", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(anyhow!(
                "could not read the configuration file {}: {e}",
                path.display()
            )),
        }
    }

    /// Writes the file (creating its directory), readable by the owner only: it may hold tokens.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create the directory {}", dir.display()))?;
        }
        let tmp = path.with_extension("tmp");
        write_private(&tmp, self.to_yaml().as_bytes())
            .with_context(|| format!("could not write the configuration file {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("could not write the configuration file {}", path.display()))
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    pub fn control_plane(&self, name: &str) -> Option<&ControlPlane> {
        self.control_planes.iter().find(|c| c.name == name)
    }

    /// The control plane of the current context (or of `context_override`).
    pub fn current_control_plane(&self, context_override: Option<&str>) -> Result<&ControlPlane> {
        let name = context_override.unwrap_or(&self.current_context);
        if name.is_empty() {
            bail!(
                "there is no active Control Plane. Use `kumactl config control-planes add` to add a Control Plane and make it active"
            );
        }
        let ctx = self
            .context(name)
            .ok_or_else(|| anyhow!("there is no context with name \"{name}\""))?;
        self.control_plane(&ctx.control_plane).ok_or_else(|| {
            anyhow!(
                "context \"{name}\" refers to a Control Plane \"{}\" that does not exist",
                ctx.control_plane
            )
        })
    }

    /// Adds a control plane and its context. `false` when the name exists and `overwrite` is off.
    pub fn add_control_plane(&mut self, cp: ControlPlane, overwrite: bool) -> bool {
        let name = cp.name.clone();
        match self.control_planes.iter_mut().find(|c| c.name == name) {
            Some(_) if !overwrite => return false,
            Some(existing) => *existing = cp,
            None => self.control_planes.push(cp),
        }
        match self.contexts.iter_mut().find(|c| c.name == name) {
            Some(ctx) => ctx.control_plane = name.clone(),
            None => self.contexts.push(Context {
                name: name.clone(),
                control_plane: name,
                extra: Map::new(),
            }),
        }
        true
    }

    /// Makes the context `name` the current one. `false` when there is no such context.
    pub fn switch_context(&mut self, name: &str) -> bool {
        if self.context(name).is_none() {
            return false;
        }
        self.current_context = name.to_string();
        true
    }

    /// Removes a control plane and every context that uses it. When the current context goes,
    /// the first remaining one becomes current. `false` when there is no such control plane.
    pub fn remove_control_plane(&mut self, name: &str) -> bool {
        let before = self.control_planes.len();
        self.control_planes.retain(|c| c.name != name);
        if self.control_planes.len() == before {
            return false;
        }
        self.contexts.retain(|c| c.control_plane != name);
        if self.context(&self.current_context).is_none() {
            self.current_context = self
                .contexts
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default();
        }
        true
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// `--config-file`, or `~/.kumactl/config`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kumactl").join("config")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUMA_FILE: &str = "contexts:\n- controlPlane: test1\n  defaults:\n    mesh: demo\n  name: test1\n- controlPlane: example\n  name: example\ncontrolPlanes:\n  - coordinates:\n      apiServer:\n        url: https://test1.internal:5681\n        skipVerify: true\n    name: test1\n  - coordinates:\n      apiServer:\n        caCertFile: /tmp/ca-cert.pem\n        clientCertFile: /tmp/client.cert.pem\n        url: http://placeholder-address\n        authType: tokens\n        authConf:\n          token: abc\n    name: example\ncurrentContext: example\n";

    #[test]
    fn reads_kumas_file_and_keeps_unknown_fields() {
        let cfg = Config::parse(KUMA_FILE).unwrap();
        assert_eq!(cfg.current_context, "example");
        let cp = cfg.current_control_plane(None).unwrap();
        assert_eq!(cp.coordinates.api_server.url, "http://placeholder-address");
        assert_eq!(cp.coordinates.api_server.token(), Some("abc"));
        assert_eq!(
            cp.coordinates.api_server.ca_cert_file.as_deref(),
            Some("/tmp/ca-cert.pem")
        );
        assert!(
            cfg.control_plane("test1")
                .unwrap()
                .coordinates
                .api_server
                .skip_verify
        );
        let again = Config::parse(&cfg.to_yaml()).unwrap();
        assert_eq!(again, cfg);
        let yaml = cfg.to_yaml();
        assert!(
            yaml.contains("clientCertFile: /tmp/client.cert.pem"),
            "{yaml}"
        );
        assert!(yaml.contains("mesh: demo"), "{yaml}");
    }

    #[test]
    fn missing_file_is_the_local_control_plane_and_save_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config");
        let mut cfg = Config::load(&path).unwrap();
        assert_eq!(
            cfg.current_control_plane(None)
                .unwrap()
                .coordinates
                .api_server
                .url,
            DEFAULT_URL
        );
        assert!(!path.exists());
        let cp = ControlPlane {
            name: "prod".into(),
            coordinates: Coordinates {
                api_server: ApiServer::new("http://prod:5681"),
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        assert!(cfg.add_control_plane(cp.clone(), false));
        assert!(!cfg.add_control_plane(cp.clone(), false));
        assert!(cfg.add_control_plane(cp, true));
        assert!(cfg.switch_context("prod"));
        assert!(!cfg.switch_context("nope"));
        cfg.save(&path).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded, cfg);
        assert_eq!(loaded.control_planes.len(), 2);
        assert_eq!(loaded.current_context, "prod");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn removing_the_current_control_plane_switches_to_another() {
        let mut cfg = Config::parse(KUMA_FILE).unwrap();
        assert!(cfg.remove_control_plane("example"));
        assert_eq!(cfg.current_context, "test1");
        assert!(!cfg.remove_control_plane("example"));
        assert!(cfg.remove_control_plane("test1"));
        assert_eq!(cfg.current_context, "");
        assert!(cfg.current_control_plane(None).is_err());
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert!(Config::parse("contexts: 3\n").is_err());
        assert!(Config::parse("contexts: [\n").is_err());
        let empty = Config::parse("").unwrap();
        assert!(empty.current_control_plane(None).is_err());
    }
}
