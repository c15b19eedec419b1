//! `kuma-cp` command line: `kuma-cp run [--config-file F]`, `kuma-cp version`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "kuma-cp",
    about = "Aerie control plane (Kuma-compatible)",
    version
)]
struct Cli {
    /// Log level: debug, info, warn, error.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the control plane.
    Run {
        /// Configuration file (Kuma's kuma-cp YAML keys); KUMA_* env vars override it.
        #[arg(short = 'c', long)]
        config_file: Option<PathBuf>,
    },
    /// Database schema migrations (PostgreSQL store).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration (safe to run from several replicas at once).
    Up {
        /// Configuration file; KUMA_* env vars override it.
        #[arg(short = 'c', long)]
        config_file: Option<PathBuf>,
    },
}

/// Parses arguments, runs, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!(
                "Aerie kuma-cp {} (based on Kuma {})",
                env!("CARGO_PKG_VERSION"),
                crate::BASED_ON_KUMA
            );
            0
        }
        Command::Migrate {
            action: MigrateAction::Up { config_file },
        } => with_config(
            &cli.log_level,
            config_file.as_deref(),
            |config| async move {
                println!("{}", crate::migrate_up(&config).await?);
                Ok(())
            },
        ),
        Command::Run { config_file } => {
            // The work dir holds private keys and the database: whatever this process
            // creates is for its own user only (directories 0700, files 0600).
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            with_config(&cli.log_level, config_file.as_deref(), crate::run)
        }
    }
}

/// Loads the configuration, starts the runtime and runs `f`; the process exit code.
fn with_config<F, Fut>(log_level: &str, config_file: Option<&std::path::Path>, f: F) -> i32
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging(log_level);
    let config = match Config::load(config_file, std::env::vars()) {
        Ok(c) => c,
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
    match rt.block_on(f(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},sqlx=warn,hyper=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
