//! `kumactl config view` and `kumactl config control-planes add|list|use|switch|remove`.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::cli::{AddControlPlaneArgs, ControlPlanesCommand};
use crate::client::{BaseUrl, Client};
use crate::config::{ApiServer, ControlPlane, Coordinates};
use crate::output::table;
use crate::{Globals, Io};

pub fn view(g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let cfg = g.load_config()?;
    io.out.write_all(cfg.to_yaml().as_bytes())?;
    Ok(())
}

pub async fn control_planes(cmd: ControlPlanesCommand, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    match cmd {
        ControlPlanesCommand::Add(args) => add(args, g, io).await,
        ControlPlanesCommand::List => {
            let cfg = g.load_config()?;
            let current = cfg
                .context(&cfg.current_context)
                .map(|c| c.control_plane.clone());
            let rows: Vec<Vec<String>> = cfg
                .control_planes
                .iter()
                .map(|cp| {
                    let active = if current.as_deref() == Some(cp.name.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    vec![
                        active.to_string(),
                        cp.name.clone(),
                        cp.coordinates.api_server.url.clone(),
                    ]
                })
                .collect();
            io.out
                .write_all(table::render(&["ACTIVE", "NAME", "ADDRESS"], &rows, None).as_bytes())?;
            Ok(())
        }
        ControlPlanesCommand::Use(name) | ControlPlanesCommand::Switch(name) => {
            let name = name.get();
            let mut cfg = g.load_config()?;
            if !cfg.switch_context(name) {
                bail!("there is no Control Plane with name \"{name}\"");
            }
            cfg.save(&g.config_file)?;
            writeln!(io.out, "switched active Control Plane to \"{name}\"")?;
            Ok(())
        }
        ControlPlanesCommand::Remove(name) => {
            let name = name.get();
            let mut cfg = g.load_config()?;
            if !cfg.remove_control_plane(name) {
                bail!("there is no Control Plane with name \"{name}\"");
            }
            cfg.save(&g.config_file)?;
            writeln!(io.out, "removed Control Plane \"{name}\"")?;
            match cfg.context(&cfg.current_context) {
                Some(ctx) => writeln!(
                    io.out,
                    "switched active Control Plane to \"{}\"",
                    ctx.control_plane
                )?,
                None => writeln!(
                    io.out,
                    "there is no active Control Plane left. Use `kumactl config control-planes add` to add a Control Plane and make it active"
                )?,
            }
            Ok(())
        }
    }
}

fn parse_auth_conf(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in raw {
        for part in arg.split(',') {
            let (k, v) = part
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    anyhow!("invalid argument \"{arg}\" for \"--auth-conf\": expected key=value")
                })?;
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out)
}

async fn add(args: AddControlPlaneArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let base = BaseUrl::parse(&args.address)?;
    let auth_conf = parse_auth_conf(&args.auth_conf)?;
    match args.auth_type.as_deref() {
        None | Some("") => {
            if !auth_conf.is_empty() {
                bail!("--auth-conf needs --auth-type");
            }
        }
        Some("tokens") => {
            if auth_conf.get("token").is_none_or(|t| t.is_empty()) {
                bail!("--auth-conf is not valid: provide token=YOUR_TOKEN");
            }
            if let Some(k) = auth_conf.keys().find(|k| *k != "token") {
                bail!(
                    "--auth-conf is not valid: unknown key \"{k}\", only token=YOUR_TOKEN is supported"
                );
            }
        }
        Some(other) => bail!("authentication plugin of type \"{other}\" is not found"),
    }
    let api = ApiServer {
        url: args.address.clone(),
        auth_type: args.auth_type.clone().filter(|t| !t.is_empty()),
        auth_conf,
        ca_cert_file: args.ca_cert_file.clone().filter(|c| !c.is_empty()),
        skip_verify: args.skip_verify,
        extra: Map::new(),
    };
    if base.https {
        // Fails early when neither a CA nor --skip-verify is given, or the CA file is bad.
        crate::client::tls_config(&api)?;
    }
    let mut cfg = g.load_config()?;
    if cfg.control_plane(&args.name).is_some() && !args.overwrite {
        bail!(
            "Control Plane with name \"{}\" already exists. Use --overwrite to replace an existing one.",
            args.name
        );
    }
    if !args.skip_check {
        check_control_plane(&api, g).await?;
    }
    let cp = ControlPlane {
        name: args.name.clone(),
        coordinates: Coordinates {
            api_server: api,
            extra: Map::new(),
        },
        extra: Map::new(),
    };
    cfg.add_control_plane(cp, args.overwrite);
    cfg.switch_context(&args.name);
    cfg.save(&g.config_file)?;
    writeln!(io.out, "added Control Plane \"{}\"", args.name)?;
    writeln!(io.out, "switched active Control Plane to \"{}\"", args.name)?;
    Ok(())
}

/// `GET /` must answer like a Kuma control plane (`tagline: Kuma`).
async fn check_control_plane(api: &ApiServer, g: &Globals) -> Result<()> {
    let client = Client::new(api, g.api_timeout)?;
    let resp = client
        .get("/")
        .await
        .map_err(|e| anyhow!("could not connect to the Control Plane API Server: {e:#}"))?;
    if resp.status != 200 {
        bail!(
            "Control Plane API Server at {} is not responding (GET / answered with status {})",
            api.url,
            resp.status
        );
    }
    let body: Value = serde_json::from_slice(&resp.body).map_err(|_| {
        anyhow!(
            "could not unmarshal body from the Control Plane API Server. Provided address {} is not valid Kuma Control Plane API Server",
            api.url
        )
    })?;
    match body.get("tagline").and_then(Value::as_str) {
        Some("Kuma") => Ok(()),
        Some(other) => bail!(
            "this CLI is for Kuma but the control plane you're connected to is {other}. Please use the CLI for your control plane"
        ),
        None => bail!(
            "provided address {} is not valid Kuma Control Plane API Server: GET / has no tagline",
            api.url
        ),
    }
}
