//! `kumactl version`: the client's version and, when it answers, the control plane's.

use anyhow::Result;
use serde_json::Value;

use crate::{Globals, Io, KUMA_VERSION};

pub fn client_line() -> String {
    format!(
        "Client: Aerie kumactl {} (based on Kuma {KUMA_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
}

/// `Server: Aerie 0.1.0 (based on Kuma 2.14.0)` from the body of `GET /`.
pub fn server_line(index: &Value) -> Option<String> {
    let s = |k: &str| {
        index
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let version = s("version")?;
    let product = s("product").or(s("tagline")).unwrap_or("Kuma");
    let mut line = match s("basedOnKuma") {
        Some(k) => format!("Server: {product} {version} (based on Kuma {k})"),
        None => format!("Server: {product} {version}"),
    };
    // Aerie says which replica answered and whether it leads.
    if let (Some(id), Some(leader)) = (
        s("instanceId"),
        index.get("leader").and_then(Value::as_bool),
    ) {
        line.push_str(&format!(
            ", replica {id}, {}",
            if leader { "leader" } else { "follower" }
        ));
    }
    Some(line)
}

pub async fn run(g: &Globals, io: &mut Io<'_>) -> Result<()> {
    writeln!(io.out, "{}", client_line())?;
    let server = async {
        let resp = g.client()?.get("/").await?;
        if !resp.is_success() {
            anyhow::bail!("{}", resp.api_error());
        }
        server_line(&resp.json()?)
            .ok_or_else(|| anyhow::anyhow!("the answer of GET / has no version"))
    };
    match server.await {
        Ok(line) => writeln!(io.out, "{line}")?,
        Err(e) => writeln!(
            io.err,
            "WARNING: Unable to connect to the control plane: {e:#}"
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines() {
        assert!(client_line().starts_with("Client: Aerie kumactl "));
        assert!(client_line().ends_with(" (based on Kuma 2.14)"));
        let idx = json!({"tagline": "Kuma", "product": "Aerie", "version": "0.1.0", "basedOnKuma": "2.14.0"});
        assert_eq!(
            server_line(&idx).unwrap(),
            "Server: Aerie 0.1.0 (based on Kuma 2.14.0)"
        );
        assert_eq!(
            server_line(&json!({"tagline": "Kuma", "version": "2.14.3"})).unwrap(),
            "Server: Kuma 2.14.3"
        );
        assert_eq!(server_line(&json!({})), None);
    }
}
