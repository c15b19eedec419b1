//! The Aerie control plane (`kuma-cp`) as a library: configuration, the resource store, the
//! REST API, diagnostics and the background tasks that keep derived resources in step.
//!
//! `bins/kuma-cp` is a thin shell over [`cli::main`]. Start-up order matters and is fixed in
//! [`run`]: config is validated, the store opened (and migrated), defaults ensured, and only
//! then are listeners bound, so a control plane that answers `/ready` has everything in place.

pub mod api;
pub mod ca;
pub mod cli;
pub mod config;
pub mod defaults;
pub mod diagnostics;
pub mod dpserver;
pub mod generator;
pub mod leader;
pub mod metrics;
mod serve;
pub mod signing;
pub mod tokens;

use std::sync::Arc;

use aerie_store::{MemoryStore, SharedStore, SqliteStore};
use anyhow::Context;

use crate::config::{Config, StoreType};

/// The Kuma release whose API and behaviour Aerie follows.
pub const BASED_ON_KUMA: &str = "2.14.0";

/// Current time as RFC 3339 UTC with microseconds, as stored in resources.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<SharedStore> {
    Ok(match &config.store_type {
        StoreType::Memory => Arc::new(MemoryStore::new()),
        StoreType::Postgres(pg) => Arc::new(connect_postgres(&postgres_config(pg)?).await?),
        StoreType::Embedded => {
            std::fs::create_dir_all(&config.work_dir).with_context(|| {
                format!(
                    "cannot create the work dir {} (general.workDir / KUMA_GENERAL_WORK_DIR)",
                    config.work_dir.display()
                )
            })?;
            Arc::new(SqliteStore::open(&config.database_path()).await?)
        }
    })
}

/// The store crate's connection settings from `store.postgres.*`.
pub fn postgres_config(
    pg: &config::PostgresSettings,
) -> anyhow::Result<aerie_store::PostgresConfig> {
    Ok(aerie_store::PostgresConfig {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.clone(),
        db_name: pg.db_name.clone(),
        tls_mode: pg
            .tls_mode
            .parse()
            .map_err(|e| anyhow::anyhow!("store.postgres.tls.mode: {e}"))?,
        ca_path: pg.tls_ca_path.clone(),
        cert_path: pg.tls_cert_path.clone(),
        key_path: pg.tls_key_path.clone(),
        max_open_connections: pg.max_open_connections,
        connection_timeout: pg.connection_timeout,
        schema: None,
    })
}

/// Connects to PostgreSQL, retrying while it is unreachable (a control plane may start
/// before its database); a schema that needs `kuma-cp migrate up` or a newer kuma-cp stops
/// start-up at once with that message.
async fn connect_postgres(
    cfg: &aerie_store::PostgresConfig,
) -> anyhow::Result<aerie_store::PostgresStore> {
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match aerie_store::PostgresStore::connect(cfg).await {
            Ok(store) => return Ok(store),
            Err(e @ aerie_store::StoreError::Unavailable(_))
                if e.to_string().contains("cannot connect") =>
            {
                tracing::error!(error = %e, retry_in = ?delay, "PostgreSQL unreachable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = serve::wait_for_signal() => anyhow::bail!("stopped while waiting for PostgreSQL: {e}"),
                }
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `kuma-cp migrate up`: applies the PostgreSQL schema migrations this build knows.
pub async fn migrate_up(config: &Config) -> anyhow::Result<String> {
    let StoreType::Postgres(pg) = &config.store_type else {
        anyhow::bail!(
            "migrations apply to the postgres store only: set KUMA_STORE_TYPE=postgres (store.type)"
        );
    };
    let report = aerie_store::migrate_up(&postgres_config(pg)?).await?;
    Ok(if report.applied.is_empty() {
        format!("the schema is up to date (version {})", report.current)
    } else {
        format!(
            "applied migrations {:?}; the schema is now at version {}",
            report.applied, report.current
        )
    })
}

/// Runs the control plane until SIGINT/SIGTERM, then stops gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    if defaults::ensure_default_mesh(&store, config.skip_mesh_creation).await? {
        tracing::info!("created the default Mesh (mTLS off)");
    }
    let tokens = Arc::new(tokens::TokenIssuer::load_or_create(store.clone()).await?);
    let metrics = Arc::new(metrics::Metrics::new());
    let cas = Arc::new(ca::MeshCas::new(store.clone()));
    let cas_for_leader = cas.clone();
    let instance_id: Arc<str> = Arc::from(format!("{}-{}", hostname(), std::process::id()));
    let (dp_server, reconciler) =
        dpserver::DpServer::start(store.clone(), tokens.clone(), cas, instance_id.clone());
    let hub = dp_server.hub();
    let (leader, leader_task) = leader::spawn(store.clone(), instance_id.clone(), metrics.clone());
    let state = api::AppState {
        store: store.clone(),
        tokens,
        hub,
        metrics: metrics.clone(),
        mode: config.mode,
        localhost_is_admin: config.localhost_is_admin,
        instance_id,
        leader: leader.clone(),
    };
    let shutdown = serve::Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listen) = config.api_http {
        let listener =
            serve::bind(listen, "apiServer.http.port (KUMA_API_SERVER_HTTP_PORT)").await?;
        tracing::info!(addr = %listen_str(listen), "REST API (HTTP) listening");
        tasks.spawn(serve::http(
            listener,
            api::router(state.clone()),
            shutdown.clone(),
        ));
    }
    if let Some(listen) = config.api_https {
        let tls = serve::tls_config(&config).await?;
        let listener =
            serve::bind(listen, "apiServer.https.port (KUMA_API_SERVER_HTTPS_PORT)").await?;
        tracing::info!(addr = %listen_str(listen), "REST API (HTTPS) listening");
        tasks.spawn(serve::https(
            listener,
            tls,
            api::router(state.clone()),
            shutdown.clone(),
        ));
    }
    let dp_listen = config::Listen {
        interface: std::net::IpAddr::from([0, 0, 0, 0]),
        port: config.dp_server_port,
    };
    let dp_listener = serve::bind(dp_listen, "dpServer.port (KUMA_DP_SERVER_PORT)").await?;
    tracing::info!(addr = %listen_str(dp_listen), "DP server (gRPC, TLS) listening");
    let dp_task = serve::dp_server(dp_listener, &config, dp_server, shutdown.clone()).await?;
    let diag = serve::bind(
        config.diagnostics,
        "diagnostics.serverPort (KUMA_DIAGNOSTICS_SERVER_PORT)",
    )
    .await?;
    tasks.spawn(serve::http(
        diag,
        diagnostics::router(store.clone(), metrics.clone(), state.leader.clone()),
        shutdown.clone(),
    ));
    let generator = tokio::spawn(generator::run(store.clone(), leader.clone()));
    let cleanup = tokio::spawn(leader::cleanup_offline(
        store.clone(),
        leader.clone(),
        config.dataplane_cleanup_age,
    ));
    let housekeeping = tokio::spawn(leader::ca_housekeeping(
        store.clone(),
        cas_for_leader,
        leader,
    ));
    metrics.set_ready(true);
    tracing::info!(mode = config.mode.as_str(), work_dir = %config.work_dir.display(), "kuma-cp is ready");

    serve::wait_for_signal().await;
    tracing::info!("stopping: draining connections");
    metrics.set_ready(false);
    shutdown.trigger();
    while tasks.join_next().await.is_some() {}
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), dp_task).await;
    generator.abort();
    reconciler.abort();
    leader_task.abort();
    cleanup.abort();
    housekeeping.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn listen_str(l: config::Listen) -> String {
    std::net::SocketAddr::new(l.interface, l.port).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kuma-cp".into())
}
