//! `kuma-dp run`: Kuma's flags, the Dataplane file (with `{{ var }}` templating), the token,
//! then the proxy engine driven by the control-plane client until SIGTERM/SIGINT. With
//! `--proxy-type ingress` the file is a ZoneIngress and the engine a zone ingress.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// `dataplane` (a sidecar, with a Dataplane resource) or `ingress` (a zone ingress,
    /// with a ZoneIngress resource in --dataplane-file / --dataplane).
    #[arg(long, env = "KUMA_DATAPLANE_PROXY_TYPE", default_value = "dataplane")]
    proxy_type: String,
    /// Worker threads of the proxy (Kuma's `--concurrency`, which sets Envoy's); 0 means
    /// one per CPU.
    #[arg(long, default_value_t = 0)]
    pub concurrency: u16,
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
            // A sidecar serves connections on its own worker threads (one runtime each), so
            // the main runtime only carries the control-plane stream, the admin API and the
            // accept loops. The zone ingress serves on the main runtime.
            let mut builder = match &settings {
                app::Launch::Sidecar(_) => tokio::runtime::Builder::new_current_thread(),
                app::Launch::Ingress(_) => {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    if args.concurrency > 0 {
                        b.worker_threads(usize::from(args.concurrency));
                    }
                    b
                }
            };
            let rt = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("Error: cannot start the runtime: {e}");
                    return 1;
                }
            };
            match rt.block_on(app::launch(settings)) {
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
    render(template, vars, "Dataplane")
}

fn render(template: &str, vars: &[String], kind: &str) -> Result<String, String> {
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
            "the {kind} template uses {{{{ {name} }}}} but no --dataplane-var {name}=... was given"
        ));
    }
    Ok(out)
}

/// What `--proxy-type` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyKind {
    Dataplane,
    Ingress,
}

impl ProxyKind {
    fn parse(flag: &str) -> Result<ProxyKind, String> {
        match flag {
            "dataplane" => Ok(ProxyKind::Dataplane),
            "ingress" => Ok(ProxyKind::Ingress),
            "egress" => Err(
                "--proxy-type egress: ZoneEgress is not supported yet; use dataplane (a sidecar, the default) or ingress (a zone ingress)".into(),
            ),
            other => Err(format!(
                "--proxy-type {other}: unknown proxy type; use dataplane (a sidecar, the default) or ingress (a zone ingress)"
            )),
        }
    }

    /// The resource type the document must have.
    fn resource(self) -> ResourceType {
        match self {
            ProxyKind::Dataplane => ResourceType::Dataplane,
            ProxyKind::Ingress => ResourceType::ZoneIngress,
        }
    }
}

fn settings(args: &RunArgs) -> Result<app::Launch, String> {
    let kind = ProxyKind::parse(&args.proxy_type)?;
    let wanted = kind.resource();
    let template = match (&args.dataplane_file, &args.dataplane) {
        (Some(_), Some(_)) => {
            return Err("give either --dataplane-file or --dataplane, not both".into());
        }
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        (None, Some(inline)) => inline.clone(),
        (None, None) => {
            return Err(format!(
                "a {wanted} is required: --dataplane-file FILE or --dataplane YAML"
            ));
        }
    };
    let text = render(&template, &args.dataplane_var, &wanted.to_string())?;
    let doc = parse_yaml_value(&text).map_err(|e| format!("invalid {wanted}: {e}"))?;
    // Say which type was expected before any field-level complaint about the wrong one.
    if let Some(found) = doc
        .get("type")
        .or_else(|| doc.get("kind"))
        .and_then(|t| t.as_str())
        .and_then(ResourceType::from_name)
    {
        check_kind(kind, found)?;
    }
    let res = resource_from_value(&doc).map_err(|e| format!("invalid {wanted}: {e}"))?;
    check_kind(kind, res.resource_type())?;
    validate::validate(&res).map_err(|e| format!("invalid {wanted}: {e}"))?;
    let json = serde_json::to_string(&aerie_core::format::resource_to_value(&res))
        .map_err(|e| e.to_string())?;
    let token = token(args, kind)?;
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
    match &res.spec {
        Spec::Dataplane(spec) => {
            let admin_port = admin_port(
                spec.networking
                    .as_ref()
                    .and_then(|n| n.admin.as_ref())
                    .map(|a| a.port),
            )?;
            Ok(app::Launch::Sidecar(app::Settings {
                mesh: res.mesh().to_string(),
                name: res.name().to_string(),
                dataplane_json: json,
                admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)),
                cp_addresses,
                ca_cert_pem,
                token,
                workers: usize::from(args.concurrency),
            }))
        }
        Spec::ZoneIngress(spec) => {
            let net = &spec.networking;
            let ip: IpAddr = net.address.parse().map_err(|_| {
                format!(
                    "invalid ZoneIngress: networking.address: the ingress listens on it, so it must be an IP address, not {:?}",
                    net.address
                )
            })?;
            let port = u16::try_from(net.port)
                .map_err(|_| "invalid ZoneIngress: networking.port: out of range".to_string())?;
            let admin_port = admin_port(net.admin.as_ref().map(|a| a.port))?;
            Ok(app::Launch::Ingress(app::IngressSettings {
                name: res.name().to_string(),
                zone_ingress_json: json,
                listen: SocketAddr::new(ip, port),
                admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)),
                cp_addresses,
                ca_cert_pem,
                token,
            }))
        }
        _ => Err(format!("invalid {wanted}")),
    }
}

/// A Dataplane run as an ingress (or the reverse) is refused with what to change.
fn check_kind(kind: ProxyKind, found: ResourceType) -> Result<(), String> {
    match (kind, found) {
        (ProxyKind::Dataplane, ResourceType::Dataplane)
        | (ProxyKind::Ingress, ResourceType::ZoneIngress) => Ok(()),
        (ProxyKind::Dataplane, ResourceType::ZoneIngress) => Err(
            "invalid Dataplane: the resource is a ZoneIngress; run a zone ingress with --proxy-type ingress".into(),
        ),
        (ProxyKind::Ingress, ResourceType::Dataplane) => Err(
            "invalid ZoneIngress: --proxy-type ingress needs a resource of type ZoneIngress, but this one is a Dataplane (drop --proxy-type ingress to run a sidecar)".into(),
        ),
        (kind, other) => Err(format!(
            "invalid {0}: the resource is a {other}, not a {0}",
            kind.resource()
        )),
    }
}

/// `networking.admin.port`, 9901 when unset or 0.
fn admin_port(port: Option<u32>) -> Result<u16, String> {
    let port = port.filter(|p| *p != 0).unwrap_or(9901);
    u16::try_from(port).map_err(|_| "networking.admin.port: out of range".to_string())
}

/// The token from its file, the flag or `KUMA_DATAPLANE_RUNTIME_TOKEN`: always required
/// (fail closed). For an ingress it is a zone token, opaque here.
fn token(args: &RunArgs, kind: ProxyKind) -> Result<String, String> {
    let token = match (&args.dataplane_token_file, &args.dataplane_token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(match kind {
                ProxyKind::Dataplane => "a dataplane token is required: --dataplane-token-file FILE (create one with `kumactl generate dataplane-token --name NAME --mesh MESH`)".into(),
                ProxyKind::Ingress => "a zone token is required: --dataplane-token-file FILE or --dataplane-token TOKEN (create one with `kumactl generate zone-token --zone ZONE --scope ingress`)".into(),
            });
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(match kind {
            ProxyKind::Dataplane => "the dataplane token is empty".into(),
            ProxyKind::Ingress => "the zone token is empty".into(),
        });
    }
    Ok(token)
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

    const INGRESS: &str = "type: ZoneIngress\nname: ingress-1\nnetworking:\n  address: 127.0.0.3\n  port: 10001\n  admin: {port: 9911}\n";
    const DATAPLANE: &str = "type: Dataplane\nmesh: default\nname: web-1\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 1\n    servicePort: 2\n    tags: {kuma.io/service: web}\n";

    fn run_args(extra: &[&str]) -> Result<app::Launch, String> {
        let mut argv = vec!["kuma-dp", "run", "--dataplane-token", "t"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Run(args) = cli.command else {
            return Err("not run".into());
        };
        settings(&args)
    }

    #[test]
    fn ingress_settings_come_from_the_zone_ingress() {
        let Ok(app::Launch::Ingress(s)) =
            run_args(&["--proxy-type", "ingress", "--dataplane", INGRESS])
        else {
            panic!("expected an ingress");
        };
        assert_eq!(s.name, "ingress-1");
        assert_eq!(s.listen.to_string(), "127.0.0.3:10001");
        assert_eq!(s.admin.to_string(), "127.0.0.1:9911");
        assert!(s.zone_ingress_json.contains("\"ZoneIngress\""));
        // Templating works as for a Dataplane.
        let tpl = INGRESS.replace("127.0.0.3", "{{ address }}");
        let Ok(app::Launch::Ingress(s)) = run_args(&[
            "--proxy-type",
            "ingress",
            "--dataplane",
            &tpl,
            "-v",
            "address=127.0.0.4",
        ]) else {
            panic!("expected an ingress");
        };
        assert_eq!(s.listen.to_string(), "127.0.0.4:10001");
        assert!(matches!(
            run_args(&["--dataplane", DATAPLANE]),
            Ok(app::Launch::Sidecar(_))
        ));
    }

    fn err(extra: &[&str]) -> String {
        match run_args(extra) {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn wrong_kinds_and_fields_are_named() {
        let e = err(&["--proxy-type", "egress", "--dataplane", INGRESS]);
        assert!(
            e.contains("--proxy-type egress") && e.contains("not supported"),
            "{e}"
        );
        let e = err(&["--proxy-type", "gateway", "--dataplane", INGRESS]);
        assert!(e.contains("unknown proxy type"), "{e}");
        let e = err(&["--proxy-type", "ingress", "--dataplane", DATAPLANE]);
        assert!(
            e.contains("ZoneIngress") && e.contains("Dataplane") && e.contains("--proxy-type"),
            "{e}"
        );
        let e = err(&["--dataplane", INGRESS]);
        assert!(e.contains("--proxy-type ingress"), "{e}");
        let e = err(&[
            "--proxy-type",
            "ingress",
            "--dataplane",
            &INGRESS.replace("10001", "0"),
        ]);
        assert!(e.contains("networking.port"), "{e}");
        let e = err(&[
            "--proxy-type",
            "ingress",
            "--dataplane",
            &INGRESS.replace("127.0.0.3", "ingress.local"),
        ]);
        assert!(
            e.contains("networking.address") && e.contains("IP address"),
            "{e}"
        );
        let e = err(&[
            "--proxy-type",
            "ingress",
            "--dataplane",
            &format!("{INGRESS}mesh: default\n"),
        ]);
        assert!(e.contains("mesh"), "{e}");
        let e = err(&["--proxy-type", "ingress"]);
        assert!(e.contains("a ZoneIngress is required"), "{e}");
    }

    #[test]
    fn an_ingress_needs_a_token() {
        let cli = Cli::try_parse_from([
            "kuma-dp",
            "run",
            "--proxy-type",
            "ingress",
            "--dataplane",
            INGRESS,
        ])
        .unwrap();
        let Command::Run(mut args) = cli.command else {
            panic!()
        };
        args.dataplane_token = None; // the environment may hold one
        args.dataplane_token_file = None;
        let Err(e) = settings(&args) else {
            panic!("accepted without a token")
        };
        assert!(e.contains("zone token is required"), "{e}");
    }
}
