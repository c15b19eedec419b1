//! `kumactl get <plural>` and `kumactl get <singular> NAME`, with `-o table|yaml|json`.

use aerie_core::Scope;
use anyhow::{Result, anyhow, bail};
use serde_json::Value;
use time::OffsetDateTime;

use super::{collection_path, item_path, resolve_type, segment};
use crate::cli::GetArgs;
use crate::output::{Format, table, yaml};
use crate::{Globals, Io};

pub async fn run(args: GetArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let rtype = resolve_type(&args.resource_type)?;
    let client = g.client()?;
    let now = OffsetDateTime::now_utc();
    let global = rtype.scope() == Scope::Global;

    if let Some(name) = &args.name {
        let resp = client.get(&item_path(rtype, &args.mesh, name)).await?;
        if resp.status == 404 {
            if global {
                bail!("No resources found");
            }
            bail!("No resources found in {} mesh", args.mesh);
        }
        if !resp.is_success() {
            if global {
                bail!("failed to get {name}: {}", resp.api_error());
            }
            bail!(
                "failed to get {name} in mesh {}: {}",
                args.mesh,
                resp.api_error()
            );
        }
        let item = resp.json()?;
        let text = match args.output {
            Format::Table => {
                let (headers, rows) = table::rows_for(rtype, std::slice::from_ref(&item), now);
                table::render(&headers, &rows, None)
            }
            Format::Yaml => yaml::to_yaml(&item),
            Format::Json => yaml::to_json(&item),
        };
        io.out.write_all(text.as_bytes())?;
        return Ok(());
    }

    let mut path = collection_path(rtype, &args.mesh);
    let mut query = Vec::new();
    if let Some(size) = args.size.filter(|s| *s > 0) {
        query.push(format!("size={size}"));
    }
    if let Some(offset) = args.offset.as_deref().filter(|o| !o.is_empty()) {
        query.push(format!("offset={}", segment(offset)));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let resp = client.get(&path).await?;
    if !resp.is_success() {
        bail!("failed to list {}: {}", rtype.name(), resp.api_error());
    }
    let body = resp.json()?;
    let items: Vec<Value> = body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "failed to list {}: the answer has no `items` list",
                rtype.name()
            )
        })?;
    let next = body.get("next").cloned().unwrap_or(Value::Null);
    let total = body
        .get("total")
        .and_then(Value::as_u64)
        .unwrap_or(items.len() as u64);
    let text = match args.output {
        Format::Table => {
            let (headers, rows) = table::rows_for(rtype, &items, now);
            table::render(&headers, &rows, table::pagination_footer(&next).as_deref())
        }
        Format::Yaml => yaml::to_yaml(&yaml::list_value(&items, &next, total)),
        Format::Json => yaml::to_json(&yaml::list_value(&items, &next, total)),
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}
