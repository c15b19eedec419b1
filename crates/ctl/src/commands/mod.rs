//! One module per kumactl command.

pub mod apply;
pub mod config;
pub mod delete;
pub mod generate;
pub mod get;
pub mod inspect;
pub mod version;

use aerie_core::{ResourceType, Scope};
use anyhow::{Result, anyhow};

use crate::cli::{Command, ConfigCommand, GenerateCommand, InspectCommand};
use crate::{Globals, Io};

/// Runs a parsed command.
pub async fn execute(cmd: Command, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    match cmd {
        Command::Apply(args) => apply::run(args, g, io).await,
        Command::Get(args) => get::run(args, g, io).await,
        Command::Delete(args) => delete::run(args, g, io).await,
        Command::Config { command } => match command {
            ConfigCommand::View => config::view(g, io),
            ConfigCommand::ControlPlanes { command } => {
                config::control_planes(command, g, io).await
            }
        },
        Command::Generate { command } => match command {
            GenerateCommand::UserToken(args) => generate::user_token(args, g, io).await,
            GenerateCommand::DataplaneToken(args) => generate::dataplane_token(args, g, io).await,
            GenerateCommand::ZoneToken(args) => generate::zone_token(args, g, io).await,
        },
        Command::Inspect { command } => match command {
            InspectCommand::Dataplanes(args) => inspect::dataplanes(args, g, io).await,
            InspectCommand::Dataplane(args) => inspect::dataplane(args, g, io).await,
            InspectCommand::Meshes(args) => inspect::meshes(args, g, io).await,
            InspectCommand::Zones(args) => inspect::zones(args, g, io).await,
            InspectCommand::Zoneingresses(args) => inspect::zone_ingresses(args, g, io).await,
        },
        Command::Version => version::run(g, io).await,
        Command::Completion { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kumactl", io.out);
            Ok(())
        }
    }
}

/// A type argument (`mesh`, `meshes`, `mtp`, `MeshTrafficPermission`, ...); upstream
/// kumactl's `zone-ingress`/`zone-ingresses` spelling too.
pub fn resolve_type(arg: &str) -> Result<ResourceType> {
    if matches!(arg, "zone-ingress" | "zone-ingresses") {
        return Ok(ResourceType::ZoneIngress);
    }
    ResourceType::from_cli(arg).ok_or_else(|| {
        let allowed: Vec<&str> = ResourceType::ALL.iter().map(|t| t.cli_singular()).collect();
        anyhow!(
            "unknown TYPE: {arg}. Allowed values: {}",
            allowed.join(", ")
        )
    })
}

/// Percent-encodes one path segment (names are RFC 1123, but never trust input).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a `--tag key=value` flag (cobra's wording for a malformed one).
pub fn parse_tag(arg: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(anyhow!(
            "invalid argument \"{arg}\" for \"--tag\" flag: {arg} must be formatted as key=value"
        )),
    }
}

/// `/meshes/{mesh}/{plural}` or `/{plural}`.
pub fn collection_path(rtype: ResourceType, mesh: &str) -> String {
    match rtype.scope() {
        Scope::Mesh => format!("/meshes/{}/{}", segment(mesh), rtype.plural()),
        Scope::Global => format!("/{}", rtype.plural()),
    }
}

/// `/meshes/{mesh}/{plural}/{name}`, `/meshes/{name}` or `/{plural}/{name}`.
pub fn item_path(rtype: ResourceType, mesh: &str, name: &str) -> String {
    format!("{}/{}", collection_path(rtype, mesh), segment(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            item_path(ResourceType::Mesh, "default", "default"),
            "/meshes/default"
        );
        assert_eq!(
            item_path(ResourceType::MeshTrafficPermission, "default", "allow-all"),
            "/meshes/default/meshtrafficpermissions/allow-all"
        );
        assert_eq!(
            item_path(ResourceType::Zone, "default", "z 1"),
            "/zones/z%201"
        );
        assert_eq!(
            collection_path(ResourceType::Dataplane, "m"),
            "/meshes/m/dataplanes"
        );
        assert_eq!(
            collection_path(ResourceType::GlobalSecret, "m"),
            "/globalsecrets"
        );
        assert!(
            resolve_type("nope")
                .unwrap_err()
                .to_string()
                .starts_with("unknown TYPE: nope. Allowed values: mesh, dataplane")
        );
        assert_eq!(
            parse_tag("kuma.io/service=web").unwrap(),
            ("kuma.io/service".to_string(), "web".to_string())
        );
        assert_eq!(parse_tag("k=").unwrap(), ("k".to_string(), String::new()));
        assert_eq!(
            parse_tag("web").unwrap_err().to_string(),
            "invalid argument \"web\" for \"--tag\" flag: web must be formatted as key=value"
        );
        assert!(parse_tag("=v").is_err());
        assert_eq!(
            resolve_type("mtp").unwrap(),
            ResourceType::MeshTrafficPermission
        );
        for arg in [
            "zoneingress",
            "zoneingresses",
            "zone-ingress",
            "zone-ingresses",
        ] {
            assert_eq!(
                resolve_type(arg).unwrap(),
                ResourceType::ZoneIngress,
                "{arg}"
            );
        }
        assert_eq!(resolve_type("zones").unwrap(), ResourceType::Zone);
        assert_eq!(
            item_path(ResourceType::ZoneIngress, "default", "zi-1"),
            "/zoneingresses/zi-1"
        );
    }
}
