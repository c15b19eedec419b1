//! `kumactl` for Aerie: the same commands, flags, outputs and messages as Kuma 2.14's kumactl,
//! talking to the control plane's REST API (see `docs/rest-api.md`).
//!
//! [`main`] is what the binary calls; [`run_with`] runs one command line against given
//! standard streams, which is how the tests drive it.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod output;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Parser;

use crate::cli::Cli;
use crate::client::Client;
use crate::config::Config;

/// The Kuma release this kumactl mimics.
pub const KUMA_VERSION: &str = "2.14";

/// The standard streams of one run.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Options every command shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub config_file: PathBuf,
    pub api_timeout: Duration,
    pub context: Option<String>,
}

impl Globals {
    fn from_cli(cli: &Cli) -> Result<Globals> {
        let api_timeout = aerie_core::duration::parse_go_duration(&cli.api_timeout)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow!("invalid argument \"{}\" for \"--api-timeout\": expected a duration like 30s or 1m", cli.api_timeout)
            })?;
        Ok(Globals {
            config_file: cli.config_file.clone().unwrap_or_else(config::default_path),
            api_timeout,
            context: cli.context.clone(),
        })
    }

    pub fn load_config(&self) -> Result<Config> {
        Config::load(&self.config_file)
    }

    /// A client for the active control plane.
    pub fn client(&self) -> Result<Client> {
        let cfg = self.load_config()?;
        let cp = cfg.current_control_plane(self.context.as_deref())?;
        Client::new(&cp.coordinates.api_server, self.api_timeout)
    }
}

/// Formats a duration the short way: `1m`, `30s`, `1m30s`, `200ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || d.subsec_millis() != 0 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Entry point of the `kumactl` binary: runs `std::env::args_os()` and returns the exit code.
pub fn main() -> i32 {
    run(std::env::args_os())
}

/// Runs one command line with the process's standard streams; returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: could not start the runtime: {e}");
            return 1;
        }
    };
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut io = Io {
        stdin: &mut stdin,
        out: &mut stdout,
        err: &mut stderr,
    };
    let code = rt.block_on(run_with(args, &mut io));
    let _ = io.out.flush();
    code
}

/// Runs one command line against the given streams; returns the exit code (0 or 1).
pub async fn run_with<I, T>(args: I, io: &mut Io<'_>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = write!(io.out, "{}", e.render());
                    0
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = write!(io.err, "{}", e.render());
                    1
                }
                _ => {
                    let text = e.render().to_string();
                    let text = text.strip_prefix("error: ").unwrap_or(&text);
                    let _ = write!(io.err, "Error: {text}");
                    if !text.ends_with('\n') {
                        let _ = writeln!(io.err);
                    }
                    1
                }
            };
        }
    };
    let result = match Globals::from_cli(&cli) {
        Ok(g) => commands::execute(cli.command, &g, io).await,
        Err(e) => Err(e),
    };
    let _ = io.out.flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(io.err, "Error: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
