//! `kumactl delete TYPE NAME [--mesh M]`.

use anyhow::{Result, bail};

use super::{item_path, resolve_type};
use crate::cli::DeleteArgs;
use crate::{Globals, Io};

pub async fn run(args: DeleteArgs, g: &Globals, io: &mut Io<'_>) -> Result<()> {
    let rtype = resolve_type(&args.resource_type)?;
    let client = g.client()?;
    let resp = client
        .delete(&item_path(rtype, &args.mesh, &args.name))
        .await?;
    if resp.status == 404 {
        bail!("there is no {} with name \"{}\"", rtype.name(), args.name);
    }
    if !resp.is_success() {
        bail!(
            "failed to delete {} with the name \"{}\": {}",
            rtype.name(),
            args.name,
            resp.api_error()
        );
    }
    writeln!(io.out, "deleted {} \"{}\"", rtype.name(), args.name)?;
    Ok(())
}
