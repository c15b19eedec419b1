//! `kumactl generate user-token --name N --group G --valid-for D`.

use anyhow::{Result, bail};
use serde_json::json;

use crate::cli::UserTokenArgs;
use crate::{Globals, Io};

pub async fn user_token(args: UserTokenArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    if aerie_core::duration::parse_go_duration(&args.valid_for).is_none() {
        bail!(
            "invalid argument \"{}\" for \"--valid-for\": expected a duration like 24h or 30m",
            args.valid_for
        );
    }
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
