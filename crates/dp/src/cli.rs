//! `kuma-dp run`: Kuma's flags, the Dataplane file (with `{{ var }}` templating), the token,
//! then the proxy engine driven by the control-plane client until SIGTERM/SIGINT.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use aerie_core::format::{parse_yaml_value, resource_from_value};
use aerie_core::{ResourceType, Spec, validate};
use clap::{Parser, Subcommand};

use crate::app;

#[derive(Parser)]
#[command(
    name = "kuma-dp",
    about = "Aerie data plane proxy (Kuma-compatible)",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the data plane proxy.
    Run(Box<RunArgs>),
    /// Print the version.
    Version,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The control plane's DP server; several may be given, comma-separated.
    #[arg(
        long,
        env = "KUMA_CONTROL_PLANE_URL",
        default_value = "https://localhost:5678"
    )]
    cp_address: String,
    /// The CA certificate of the control plane's DP server (`{workDir}/tls/dp-server.crt`
    /// for a generated one). Without it the control plane is not verified.
    #[arg(long, env = "KUMA_CONTROL_PLANE_CA_CERT_FILE")]
    ca_cert_file: Option<PathBuf>,
    /// Path to the Dataplane resource (YAML, Universal format).
    #[arg(short = 'd', long, env = "KUMA_DATAPLANE_RUNTIME_RESOURCE_PATH")]
    dataplane_file: Option<PathBuf>,
    /// The Dataplane resource inline.
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_RESOURCE")]
    dataplane: Option<String>,
    /// A value for a `{{ name }}` placeholder in the Dataplane template (repeatable).
    #[arg(short = 'v', long = "dataplane-var", value_name = "KEY=VALUE")]
    dataplane_var: Vec<String>,
    /// File holding the dataplane token (`kumactl generate dataplane-token`).
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_TOKEN_PATH")]
    dataplane_token_file: Option<PathBuf>,
    /// The dataplane token itself.
    #[arg(long, env = "KUMA_DATAPLANE_RUNTIME_TOKEN", hide_env_values = true)]
    dataplane_token: Option<String>,
    /// Only `dataplane` (sidecar) is supported; ingress comes with multi-zone.
    #[arg(long, default_value = "dataplane")]
    proxy_type: String,
    /// Log level: debug, info, warn, error.
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Parses arguments, runs, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!(
                "Aerie kuma-dp {} (based on Kuma 2.14)",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        Command::Run(args) => {
            init_logging(&args.log_level);
            let settings = match settings(&args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return 1;
                }
            };
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("Error: cannot start the runtime: {e}");
                    return 1;
                }
            };
            match rt.block_on(app::run(settings)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    1
                }
            }
        }
    }
}

fn init_logging(level: &str) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},h2=warn,hyper=warn,tower=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Replaces `{{ key }}` / `{{key}}` placeholders; any left over is an error naming it.
pub fn render_template(template: &str, vars: &[String]) -> Result<String, String> {
    let mut out = template.to_string();
    for v in vars {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| format!("--dataplane-var {v}: expected KEY=VALUE"))?;
        out = out
            .replace(&format!("{{{{ {k} }}}}"), val)
            .replace(&format!("{{{{{k}}}}}"), val);
    }
    if let Some(start) = out.find("{{") {
        let rest = &out[start + 2..];
        let name = rest.split("}}").next().unwrap_or(rest).trim();
        return Err(format!(
            "the Dataplane template uses {{{{ {name} }}}} but no --dataplane-var {name}=... was given"
        ));
    }
    Ok(out)
}

fn settings(args: &RunArgs) -> Result<app::Settings, String> {
    if args.proxy_type != "dataplane" {
        return Err(format!(
            "--proxy-type {}: only \"dataplane\" is supported in this version",
            args.proxy_type
        ));
    }
    let template = match (&args.dataplane_file, &args.dataplane) {
        (Some(_), Some(_)) => {
            return Err("give either --dataplane-file or --dataplane, not both".into());
        }
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        (None, Some(inline)) => inline.clone(),
        (None, None) => {
            return Err(
                "a Dataplane is required: --dataplane-file FILE or --dataplane YAML".into(),
            );
        }
    };
    let text = render_template(&template, &args.dataplane_var)?;
    let doc = parse_yaml_value(&text).map_err(|e| format!("invalid Dataplane: {e}"))?;
    let dp = resource_from_value(&doc).map_err(|e| format!("invalid Dataplane: {e}"))?;
    if dp.resource_type() != ResourceType::Dataplane {
        return Err(format!(
            "invalid Dataplane: the resource is a {}, not a Dataplane",
            dp.resource_type()
        ));
    }
    validate::validate(&dp).map_err(|e| format!("invalid Dataplane: {e}"))?;
    let Spec::Dataplane(spec) = &dp.spec else {
        return Err("invalid Dataplane".into());
    };
    let admin_port = spec
        .networking
        .as_ref()
        .and_then(|n| n.admin.as_ref())
        .map(|a| a.port)
        .filter(|p| *p != 0)
        .unwrap_or(9901);
    let admin_port =
        u16::try_from(admin_port).map_err(|_| "networking.admin.port: out of range".to_string())?;
    let token = match (&args.dataplane_token_file, &args.dataplane_token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err("a dataplane token is required: --dataplane-token-file FILE (create one with `kumactl generate dataplane-token --name NAME --mesh MESH`)".into());
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the dataplane token is empty".into());
    }
    let ca_cert_pem = match &args.ca_cert_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read --ca-cert-file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let cp_addresses: Vec<String> = args
        .cp_address
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let json = serde_json::to_string(&aerie_core::format::resource_to_value(&dp))
        .map_err(|e| e.to_string())?;
    Ok(app::Settings {
        mesh: dp.mesh().to_string(),
        name: dp.name().to_string(),
        dataplane_json: json,
        admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)),
        cp_addresses,
        ca_cert_pem,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templating_replaces_and_names_missing_vars() {
        let t = "name: {{ name }}\naddress: {{address}}\n";
        let out = render_template(t, &["name=web".into(), "address=127.0.0.1".into()]).unwrap();
        assert_eq!(out, "name: web\naddress: 127.0.0.1\n");
        let err = render_template(t, &["name=web".into()]).unwrap_err();
        assert!(err.contains("address"), "{err}");
        assert!(render_template(t, &["novalue".into()]).is_err());
    }
}
