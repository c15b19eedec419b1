//! `kumactl generate user-token --name N --group G --valid-for D` and
//! `kumactl generate dataplane-token --name N --mesh M [--tag k=v] [--valid-for D] [--proxy-type T]`
//! and `kumactl generate zone-token --zone Z [--scope S]... [--valid-for D]`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::parse_tag;
use crate::cli::{DataplaneTokenArgs, UserTokenArgs, ZoneScope, ZoneTokenArgs};
use crate::{Globals, Io};

fn check_valid_for(valid_for: &str) -> Result<()> {
    if aerie_core::duration::parse_go_duration(valid_for).is_none() {
        bail!(
            "invalid argument \"{valid_for}\" for \"--valid-for\": expected a duration like 24h or 30m"
        );
    }
    Ok(())
}

/// The body of `POST /tokens/dataplane`: `{name?, mesh, tags: {k: [v, ...]}, type, validFor?}`.
/// Repeated `--tag k=v1 --tag k=v2` collect into one key, in the order given, without duplicates.
pub fn dataplane_token_request(args: &DataplaneTokenArgs) -> Result<Value> {
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &args.tags {
        let (k, v) = parse_tag(t)?;
        let values = tags.entry(k).or_default();
        if !values.contains(&v) {
            values.push(v);
        }
    }
    if let Some(d) = &args.valid_for {
        check_valid_for(d)?;
    }
    let mut body = Map::new();
    if let Some(name) = args.name.as_deref().filter(|n| !n.is_empty()) {
        body.insert("name".into(), json!(name));
    }
    body.insert("mesh".into(), json!(args.mesh));
    body.insert("tags".into(), json!(tags));
    body.insert("type".into(), json!(args.proxy_type.as_str()));
    if let Some(d) = &args.valid_for {
        body.insert("validFor".into(), json!(d));
    }
    Ok(Value::Object(body))
}

pub async fn dataplane_token(args: DataplaneTokenArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let body = dataplane_token_request(&args)?;
    let client = g.client()?;
    let resp = client.post_json("/tokens/dataplane", &body).await?;
    if !resp.is_success() {
        bail!("failed to generate a dataplane token: {}", resp.api_error());
    }
    // Like kumactl: the token exactly as the control plane returned it.
    io.out.write_all(&resp.body)?;
    Ok(())
}

pub async fn user_token(args: UserTokenArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    check_valid_for(&args.valid_for)?;
    let client = g.client()?;
    let body = json!({"name": args.name, "groups": args.groups, "validFor": args.valid_for});
    let resp = client.post_json("/tokens/user", &body).await?;
    if !resp.is_success() {
        bail!("failed to generate a user token: {}", resp.api_error());
    }
    // Like kumactl: the token exactly as the control plane returned it.
    io.out.write_all(&resp.body)?;
    Ok(())
}

/// The body of `POST /tokens/zone`: `{zone, scope: [..], validFor?}`. Without `--scope` the
/// token gets every scope (as kumactl does); repeated scopes are sent once.
pub fn zone_token_request(args: &ZoneTokenArgs) -> Result<Value> {
    if let Some(d) = &args.valid_for {
        check_valid_for(d)?;
    }
    let given: &[ZoneScope] = if args.scopes.is_empty() {
        &ZoneScope::ALL
    } else {
        &args.scopes
    };
    let mut scope: Vec<&str> = Vec::with_capacity(given.len());
    for s in given {
        if !scope.contains(&s.as_str()) {
            scope.push(s.as_str());
        }
    }
    let mut body = Map::new();
    body.insert("zone".into(), json!(args.zone));
    body.insert("scope".into(), json!(scope));
    if let Some(d) = &args.valid_for {
        body.insert("validFor".into(), json!(d));
    }
    Ok(Value::Object(body))
}

pub async fn zone_token(args: ZoneTokenArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let body = zone_token_request(&args)?;
    let client = g.client()?;
    let resp = client.post_json("/tokens/zone", &body).await?;
    if !resp.is_success() {
        bail!("failed to generate a zone token: {}", resp.api_error());
    }
    // Like kumactl: the token exactly as the control plane returned it.
    io.out.write_all(&resp.body)?;
    Ok(())
}
