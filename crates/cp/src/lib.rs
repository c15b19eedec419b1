//! The Aerie control plane (`kuma-cp`) as a library: configuration, the resource store, the
//! REST API, diagnostics and the background tasks that keep derived resources in step.
//!
//! `bins/kuma-cp` is a thin shell over [`cli::main`]. Start-up order matters and is fixed in
//! [`run`]: config is validated, the store opened (and migrated), defaults ensured, and only
//! then are listeners bound, so a control plane that answers `/ready` has everything in place.

#![forbid(unsafe_code)]

pub mod api;
pub mod ca;
pub mod cli;
pub mod config;
pub mod connections;
pub mod defaults;
pub mod diagnostics;
pub mod dpserver;
pub mod generator;
pub mod kds;
pub mod leader;
pub mod mads;
pub mod metrics;
pub mod resolve;
mod serve;
pub mod signing;
pub mod store_metrics;
pub mod tokens;
pub mod workdir;

use std::sync::Arc;

use aerie_store::{MemoryStore, SharedStore, SqliteStore};

use crate::config::{Config, StoreType};

/// The Kuma release whose API and behaviour Aerie follows.
pub const BASED_ON_KUMA: &str = "2.14.0";

/// This control plane's place in a multi-zone deployment, as the API and the DP server
/// need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A zone on its own: it owns every resource type.
    Standalone,
    /// The global: it owns meshes and policies; zones own dataplanes; no proxy connects.
    Global,
    /// A zone connected to a global (its name): meshes and global policies are copies.
    Zone(String),
}

impl Role {
    pub fn of(config: &Config) -> Role {
        match &config.multizone {
            config::Multizone::Standalone => Role::Standalone,
            config::Multizone::Global(_) => Role::Global,
            config::Multizone::Federated(z) => Role::Zone(z.zone.clone()),
        }
    }

    /// The name of this zone (ingresses and synced resources carry it): a federated zone's
    /// name, or `multizone.zone.name` (default `default`) on a standalone zone.
    pub fn local_zone<'a>(&'a self, config: &'a Config) -> &'a str {
        match self {
            Role::Zone(z) => z,
            _ => config.zone_name.as_deref().unwrap_or("default"),
        }
    }
}

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
            workdir::private_dir(&config.work_dir)?;
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
    raise_fd_limit(&config);
    workdir::secure_existing(&config.work_dir)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let store = store_metrics::instrument(open_store(&config).await?, metrics.clone());
    let role = Role::of(&config);
    // A federated zone gets its meshes from the global.
    let skip_mesh = config.skip_mesh_creation || matches!(role, Role::Zone(_));
    if defaults::ensure_default_mesh(&store, skip_mesh).await? {
        tracing::info!("created the default Mesh (mTLS off)");
    }
    let tokens = tokens::TokenIssuer::load_or_create(store.clone()).await?;
    let tokens = match role {
        Role::Zone(_) => tokens.federated(),
        _ => tokens,
    };
    // Every mesh has its dataplane-token signing key from the start (meshes are created with
    // it; this covers meshes stored by an older version), so that on a global it reaches the
    // zones before any token exists. A federated zone gets the keys from its global.
    for mesh in store.list(aerie_core::ResourceType::Mesh, None).await? {
        tokens.ensure_dataplane_key(mesh.name()).await?;
    }
    if role == Role::Global {
        // Zones verify their ingresses' tokens with this key's public half: publish it
        // before any zone connects.
        signing::load_or_create(&store, "", tokens::ZONE_TOKEN_SIGNING_KEY).await?;
        tokens.publish_zone_public_key().await?;
    }
    let tokens = Arc::new(tokens);
    let cas = match role {
        Role::Zone(_) => ca::MeshCas::new(store.clone()).federated(),
        _ => ca::MeshCas::new(store.clone()),
    };
    let cas = Arc::new(cas);
    let cas_for_leader = cas.clone();
    let instance_id: Arc<str> = Arc::from(format!("{}-{}", hostname(), std::process::id()));
    // Kuma's constant `zone` label: the zone's name, `Global` on a global.
    let zone_label = match &role {
        Role::Global => "Global".to_string(),
        _ => config.zone_name.clone().unwrap_or_else(|| "Zone".into()),
    };
    metrics.set_identity(&zone_label, env!("CARGO_PKG_VERSION"), &instance_id);
    let (dp_server, reconciler) = dpserver::DpServer::start(
        store.clone(),
        tokens.clone(),
        cas,
        instance_id.clone(),
        dpserver::Placement {
            role: role.clone(),
            local_zone: role.local_zone(&config).to_string(),
            dns_cache_ttl: config.dns_cache_ttl,
        },
        metrics.clone(),
    );
    let hub = dp_server.hub();
    let (leader, leader_task) = leader::spawn(store.clone(), instance_id.clone(), metrics.clone());
    let zone_registry =
        matches!(role, Role::Global).then(|| Arc::new(kds::ZoneRegistry::new(instance_id.clone())));
    let state = api::AppState {
        role: role.clone(),
        zones: zone_registry.clone(),
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
    let api_gate = connections::Gate::new(
        "REST API",
        "apiServer.maxConnections (KUMA_API_SERVER_MAX_CONNECTIONS)",
        config.api_max_connections,
    );
    let api_timeouts = serve::api_timeouts(&config);
    if let Some(listen) = config.api_http {
        let listener =
            serve::bind(listen, "apiServer.http.port (KUMA_API_SERVER_HTTP_PORT)").await?;
        tracing::info!(addr = %listen_str(listen), "REST API (HTTP) listening");
        tasks.spawn(serve::http(
            listener,
            api::router(state.clone()),
            api_timeouts,
            api_gate.clone(),
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
            api_timeouts,
            api_gate.clone(),
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
        serve::DIAGNOSTICS_TIMEOUTS,
        connections::Gate::new(
            "diagnostics",
            "diagnostics.maxConnections (KUMA_DIAGNOSTICS_MAX_CONNECTIONS)",
            config.diagnostics_max_connections,
        ),
        shutdown.clone(),
    ));
    if let Some(mads_listen) = config.mads {
        let listener = serve::bind(
            mads_listen,
            "monitoringAssignmentServer.port (KUMA_MONITORING_ASSIGNMENT_SERVER_PORT)",
        )
        .await?;
        tracing::info!(addr = %listen_str(mads_listen), "Monitoring Assignment Discovery (MADS, Prometheus HTTP SD) listening");
        tasks.spawn(serve::http(
            listener,
            mads::router(store.clone(), config.mads_default_fetch_timeout),
            serve::MADS_TIMEOUTS,
            connections::Gate::new(
                "mads",
                "diagnostics.maxConnections (KUMA_DIAGNOSTICS_MAX_CONNECTIONS)",
                config.diagnostics_max_connections,
            ),
            shutdown.clone(),
        ));
    }
    let mut background = Vec::new();
    if let config::Multizone::Global(kds_cfg) = &config.multizone {
        let kds_listen = config::Listen {
            interface: std::net::IpAddr::from([0, 0, 0, 0]),
            port: config.kds_grpc_port,
        };
        let listener = serve::bind(
            kds_listen,
            "multizone.global.kds.grpcPort (KUMA_MULTIZONE_GLOBAL_KDS_GRPC_PORT)",
        )
        .await?;
        tracing::info!(addr = %listen_str(kds_listen), zone_auth = kds_cfg.require_zone_token, "KDS server (gRPC, TLS) listening");
        let service = kds::global::GlobalKds {
            store: store.clone(),
            tokens: state.tokens.clone(),
            require_zone_token: kds_cfg.require_zone_token,
            replica: state.instance_id.clone(),
            registry: zone_registry
                .clone()
                .unwrap_or_else(|| Arc::new(kds::ZoneRegistry::new(state.instance_id.clone()))),
            metrics: metrics.clone(),
        };
        let task = serve::kds_server(listener, &config, kds_cfg, service, shutdown.clone()).await?;
        background.push(task);
    }
    if let config::Multizone::Federated(zone_cfg) = &config.multizone {
        let (link_tx, _link_rx) = tokio::sync::watch::channel(kds::zone::LinkState::default());
        background.push(tokio::spawn(kds::zone::run(
            store.clone(),
            zone_cfg.clone(),
            leader.clone(),
            link_tx,
            metrics.clone(),
        )));
    }
    // Zones own their Dataplanes and MeshServices: the global neither generates nor
    // cleans them up.
    if role != Role::Global {
        background.push(tokio::spawn(generator::run(store.clone(), leader.clone())));
        background.push(tokio::spawn(leader::cleanup_offline(
            store.clone(),
            leader.clone(),
            config.dataplane_cleanup_age,
        )));
    }
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
    for task in background {
        task.abort();
    }
    reconciler.abort();
    leader_task.abort();
    housekeeping.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the open-files soft limit to the hard limit (every connection is a descriptor) and
/// warns when the connection caps could not all be reached under it.
fn raise_fd_limit(config: &Config) {
    let limit = match connections::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the open-files limit (RLIMIT_NOFILE) to its hard limit"
            );
            after
        }
        Ok((_, after)) => {
            tracing::info!(limit = after, "open-files limit (RLIMIT_NOFILE)");
            after
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit (RLIMIT_NOFILE)");
            return;
        }
    };
    let mut caps = vec![
        ("apiServer.maxConnections", config.api_max_connections),
        ("dpServer.maxConnections", config.dp_server_max_connections),
        (
            "diagnostics.maxConnections",
            config.diagnostics_max_connections,
        ),
    ];
    if let config::Multizone::Global(kds) = &config.multizone {
        caps.push(("multizone.global.kds.maxConnections", kds.max_connections));
    }
    // Descriptors beyond connections: the store, listeners, logs.
    let needed = caps.iter().map(|(_, n)| *n as u64).sum::<u64>() + 256;
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            caps = ?caps,
            "the open-files limit is below the connection caps: raise the hard limit (ulimit -Hn) or lower the caps, or clients may be refused once descriptors run out"
        );
    }
}

fn listen_str(l: config::Listen) -> String {
    std::net::SocketAddr::new(l.interface, l.port).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kuma-cp".into())
}
