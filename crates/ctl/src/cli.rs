//! Command-line definitions (clap derive), spelled like Kuma 2.14's kumactl.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "kumactl",
    about = "Management tool for Kuma",
    long_about = "Management tool for Kuma (Aerie, a Kuma 2.14-compatible control plane).",
    disable_version_flag = true
)]
pub struct Cli {
    /// path to the configuration file to use
    #[arg(long, global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// the timeout for api calls, like 30s or 1m. Includes connection time, any redirects, and reading the response body
    #[arg(long, global = true, default_value = "1m", value_name = "DURATION")]
    pub api_timeout: String,

    /// log level: one of off|info|debug
    #[arg(long, global = true, default_value = "off", value_name = "LEVEL")]
    pub log_level: String,

    /// the context to use (default: the current context of the configuration file)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or modify Kuma resources
    Apply(ApplyArgs),
    /// Show Kuma resources
    Get(GetArgs),
    /// Delete Kuma resources
    Delete(DeleteArgs),
    /// Manage kumactl config
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Generate resources, tokens, etc
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
    /// Inspect Kuma resources
    Inspect {
        #[command(subcommand)]
        command: InspectCommand,
    },
    /// Print version
    Version,
    /// Output shell completion code for bash, zsh or fish
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Path to file (or directory of .yaml/.yml/.json files) to apply. Pass `-` to read from stdin
    #[arg(short = 'f', long = "file", required = true, value_name = "FILE")]
    pub files: Vec<String>,

    /// Variable to replace in configuration, as key=value: `{{ key }}` becomes value
    #[arg(short = 'v', long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,

    /// Resolve variables, validate and print the result out without applying it
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Resource type: plural to list (`meshes`, `meshtrafficpermissions`, `mtp`), singular with NAME to show one
    #[arg(value_name = "TYPE")]
    pub resource_type: String,

    /// Name of the resource to show
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,

    /// mesh to use
    #[arg(short = 'm', long, default_value = aerie_core::DEFAULT_MESH)]
    pub mesh: String,

    /// maximum number of elements to return
    #[arg(long)]
    pub size: Option<u32>,

    /// the offset that indicates starting element of the resources list to retrieve
    #[arg(long)]
    pub offset: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Resource type (`meshtrafficpermission`, `mesh`, `dataplane`, ...)
    #[arg(value_name = "TYPE")]
    pub resource_type: String,

    /// Name of the resource
    #[arg(value_name = "NAME")]
    pub name: String,

    /// mesh to use
    #[arg(short = 'm', long, default_value = aerie_core::DEFAULT_MESH)]
    pub mesh: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show kumactl config
    View,
    /// Manage known Control Planes
    #[command(name = "control-planes")]
    ControlPlanes {
        #[command(subcommand)]
        command: ControlPlanesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ControlPlanesCommand {
    /// Add a Control Plane
    Add(AddControlPlaneArgs),
    /// List Control Planes
    List,
    /// Switch active Control Plane (`use NAME`)
    Use(NameArgs),
    /// Switch active Control Plane (`switch --name NAME`)
    Switch(NameArgs),
    /// Remove a Control Plane
    Remove(NameArgs),
}

/// A control plane name, positional or with `--name`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// reference name for the Control Plane
    #[arg(
        value_name = "NAME",
        required_unless_present = "name_flag",
        conflicts_with = "name_flag"
    )]
    pub name: Option<String>,

    /// reference name for the Control Plane
    #[arg(long = "name", id = "name_flag", value_name = "NAME")]
    pub name_flag: Option<String>,
}

impl NameArgs {
    pub fn get(&self) -> &str {
        self.name
            .as_deref()
            .or(self.name_flag.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Args)]
pub struct AddControlPlaneArgs {
    /// reference name for the Control Plane (required)
    #[arg(long, required = true)]
    pub name: String,

    /// URL of the Control Plane API Server (required). Example: http://localhost:5681 or https://localhost:5682
    #[arg(long, required = true)]
    pub address: String,

    /// overwrite existing Control Plane with the same reference name
    #[arg(long)]
    pub overwrite: bool,

    /// authentication type (for example: "tokens")
    #[arg(long)]
    pub auth_type: Option<String>,

    /// authentication configuration for defined authentication type, format key=value
    #[arg(long, value_name = "KEY=VALUE")]
    pub auth_conf: Vec<String>,

    /// path to the certificate authority which will be used to verify the Control Plane certificate (kumactl stores only a reference to this file)
    #[arg(long)]
    pub ca_cert_file: Option<String>,

    /// skip CA verification
    #[arg(long)]
    pub skip_verify: bool,

    /// skip checking if we can connect to the CP
    #[arg(long)]
    pub skip_check: bool,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Generate a user token
    #[command(name = "user-token")]
    UserToken(UserTokenArgs),
    /// Generate data plane token
    #[command(name = "dataplane-token")]
    DataplaneToken(DataplaneTokenArgs),
    /// Generate Zone Token
    #[command(
        name = "zone-token",
        long_about = "Generate Zone Token that is used to prove identity of zone control planes, ingresses and egresses."
    )]
    ZoneToken(ZoneTokenArgs),
}

/// `--scope` of `generate zone-token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZoneScope {
    Cp,
    Ingress,
    Egress,
}

impl ZoneScope {
    pub const ALL: [ZoneScope; 3] = [ZoneScope::Cp, ZoneScope::Ingress, ZoneScope::Egress];

    pub fn as_str(self) -> &'static str {
        match self {
            ZoneScope::Cp => "cp",
            ZoneScope::Ingress => "ingress",
            ZoneScope::Egress => "egress",
        }
    }
}

#[derive(Debug, Args)]
pub struct ZoneTokenArgs {
    /// name of the zone the token is for
    #[arg(long, required = true)]
    pub zone: String,

    /// scope of the token (repeatable or comma-separated): any of cp, ingress, egress (default: all three)
    #[arg(long = "scope", value_enum, value_delimiter = ',', ignore_case = true)]
    pub scopes: Vec<ZoneScope>,

    /// how long the token will be valid (for example "24h"; default: 10 years)
    #[arg(long)]
    pub valid_for: Option<String>,
}

/// `--proxy-type` of `generate dataplane-token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyType {
    Dataplane,
    Ingress,
    Egress,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Dataplane => "dataplane",
            ProxyType::Ingress => "ingress",
            ProxyType::Egress => "egress",
        }
    }
}

#[derive(Debug, Args)]
pub struct DataplaneTokenArgs {
    /// name of the Dataplane
    #[arg(long)]
    pub name: Option<String>,

    /// mesh to use
    #[arg(short = 'm', long, default_value = aerie_core::DEFAULT_MESH)]
    pub mesh: String,

    /// type of the Dataplane
    #[arg(long, value_enum, default_value = "dataplane")]
    pub proxy_type: ProxyType,

    /// required tag values for dataplane, as key=value (repeatable: `--tag k=v1 --tag k=v2` allows both values)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// how long the token will be valid (for example "24h")
    #[arg(long)]
    pub valid_for: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Inspect Dataplanes
    Dataplanes(InspectDataplanesArgs),
    /// Inspect Dataplane
    Dataplane(InspectDataplaneArgs),
    /// Inspect Meshes
    Meshes(InspectMeshesArgs),
    /// Inspect Zones
    Zones(InspectListArgs),
    /// Inspect Zone Ingresses
    #[command(name = "zoneingresses", visible_alias = "zone-ingresses")]
    Zoneingresses(InspectListArgs),
}

/// An inspect command that lists, with an output format.
#[derive(Debug, Args)]
pub struct InspectListArgs {
    /// output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct InspectDataplanesArgs {
    /// mesh to use
    #[arg(short = 'm', long, default_value = aerie_core::DEFAULT_MESH)]
    pub mesh: String,

    /// filter by tag in format of key=value. You can provide many tags
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

/// `--type` of `inspect dataplane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectionType {
    Policies,
    Config,
    ConfigDump,
    Stats,
    Clusters,
}

#[derive(Debug, Args)]
pub struct InspectDataplaneArgs {
    /// Name of the Dataplane
    #[arg(value_name = "NAME")]
    pub name: String,

    /// mesh to use
    #[arg(short = 'm', long, default_value = aerie_core::DEFAULT_MESH)]
    pub mesh: String,

    /// inspection type
    #[arg(long = "type", value_enum, default_value = "policies")]
    pub inspection_type: InspectionType,

    /// output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct InspectMeshesArgs {
    /// output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct UserTokenArgs {
    /// name of the user
    #[arg(long, required = true)]
    pub name: String,

    /// group of the user (repeatable)
    #[arg(long = "group")]
    pub groups: Vec<String>,

    /// how long the token will be valid (for example "24h")
    #[arg(long, required = true)]
    pub valid_for: String,
}
