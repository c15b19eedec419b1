//! The global's KDS server: authenticates each zone (zone token, scope `cp`), records the
//! Zone, then runs the global -> zone sender and the zone -> global receiver.

use std::sync::Arc;

use aerie_core::spec::ZoneSpec;
use aerie_core::{Meta, Resource, ResourceType, Spec};
use aerie_kds::apply::Side;
use aerie_kds::grpc::{KdsSync, MessageStream};
use aerie_kds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, ZONE_METADATA};
use aerie_store::{SharedStore, StoreError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    Observed, OnlineTracker, Source, ZoneRegistry, global_desired, run_receiver, run_sender,
};
use crate::tokens::TokenIssuer;
use aerie_kds::delta::Desired;

/// What the global sends one zone.
struct GlobalSource {
    store: SharedStore,
    tokens: Arc<TokenIssuer>,
    zone: String,
    /// The id of the zone token the zone connected with (when zones authenticate).
    token_id: Option<String>,
}

#[tonic::async_trait]
impl Source for GlobalSource {
    async fn resources(&self) -> Result<Desired, String> {
        // Disabling the Zone ends its connection (and the next one is refused).
        match self.store.get(ResourceType::Zone, "", &self.zone).await {
            Ok(Some(Resource {
                spec:
                    Spec::Zone(ZoneSpec {
                        enabled: Some(false),
                    }),
                ..
            })) => return Err(format!("zone \"{}\" was disabled", self.zone)),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read the store: {e}")),
        }
        // Revoking the zone's token ends its connection too (the next one is refused).
        if let Some(id) = &self.token_id
            && self
                .tokens
                .zone_token_revoked(id)
                .await
                .map_err(|e| format!("cannot read the zone token revocations: {e}"))?
        {
            return Err(format!(
                "the zone token of zone \"{}\" was revoked",
                self.zone
            ));
        }
        global_desired(&self.store, &self.zone)
            .await
            .map_err(|e| format!("cannot read the store: {e}"))
    }
}

pub struct GlobalKds {
    pub store: SharedStore,
    pub tokens: Arc<TokenIssuer>,
    pub require_zone_token: bool,
    pub replica: Arc<str>,
    pub registry: Arc<ZoneRegistry>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

fn metadata<'a>(req: &'a tonic::metadata::MetadataMap, key: &str) -> Option<&'a str> {
    req.get(key).and_then(|v| v.to_str().ok())
}

impl GlobalKds {
    /// Who is calling: the zone name from the metadata, checked against its token; with the
    /// token's id when zones authenticate.
    async fn authenticate(
        &self,
        md: &tonic::metadata::MetadataMap,
    ) -> Result<(String, Option<String>), Status> {
        let zone = metadata(md, ZONE_METADATA)
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument("the zone did not say its name (kds-zone metadata)")
            })?
            .to_string();
        if !aerie_core::validate::is_valid_zone_name(&zone) {
            return Err(Status::invalid_argument(format!(
                "\"{zone}\" is not a valid zone name"
            )));
        }
        let mut token_id = None;
        if self.require_zone_token {
            let token = metadata(md, "authorization")
                .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Status::unauthenticated(format!(
                        "zone \"{zone}\" presented no zone token: generate one on the global with `kumactl generate zone-token --zone {zone} --scope cp` and give it to the zone (KUMA_MULTIZONE_ZONE_KDS_AUTH_CP_TOKEN_INLINE or _PATH)"
                    ))
                })?;
            let verified = self
                .tokens
                .verify_zone_token(token, "cp")
                .await
                .map_err(|refusal| {
                    let status = refusal.to_status();
                    Status::new(status.code(), format!("zone \"{zone}\": {refusal}"))
                })?;
            if verified.claims.zone != zone {
                return Err(Status::permission_denied(format!(
                    "the zone token is for zone \"{}\", not \"{zone}\"",
                    verified.claims.zone
                )));
            }
            token_id = Some(verified.id);
        }
        self.ensure_zone(&zone).await?;
        Ok((zone, token_id))
    }

    /// Authenticates a stream's zone, logging a refusal.
    async fn admit<T>(&self, request: &Request<T>) -> Result<(String, Option<String>), Status> {
        self.authenticate(request.metadata())
            .await
            .inspect_err(|status| {
                tracing::warn!(peer = ?request.remote_addr(), %status, "refused a zone");
            })
    }

    /// Creates the Zone on first contact; refuses a disabled one.
    async fn ensure_zone(&self, zone: &str) -> Result<(), Status> {
        let store_err = |e: StoreError| Status::unavailable(format!("store: {e}"));
        match self
            .store
            .get(ResourceType::Zone, "", zone)
            .await
            .map_err(store_err)?
        {
            Some(r) => match &r.spec {
                Spec::Zone(ZoneSpec {
                    enabled: Some(false),
                }) => Err(Status::permission_denied(format!(
                    "zone \"{zone}\" is disabled on the global control plane (Zone enabled: false)"
                ))),
                _ => Ok(()),
            },
            None => {
                let r = Resource {
                    meta: Meta {
                        name: zone.to_string(),
                        ..Meta::default()
                    },
                    spec: Spec::Zone(ZoneSpec {
                        enabled: Some(true),
                    }),
                };
                match self.store.create(r, &crate::now_rfc3339()).await {
                    Ok(_) => {
                        tracing::info!(zone, "a new zone connected: Zone created");
                        Ok(())
                    }
                    Err(StoreError::AlreadyExists { .. }) => Ok(()),
                    Err(e) => Err(store_err(e)),
                }
            }
        }
    }

    async fn mark_online(&self, zone: &str, online: bool) {
        let name = super::zone_session_name(zone);
        let result = if online {
            self.store.open_session("", &name, &self.replica, "").await
        } else {
            self.store.close_session("", &name, &self.replica).await
        };
        if let Err(e) = result {
            tracing::warn!(zone, error = %e, "cannot record the zone's connection in the store");
        }
    }
}

#[tonic::async_trait]
impl KdsSync for GlobalKds {
    async fn global_to_zone_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<MessageStream<DeltaDiscoveryResponse>>, Status> {
        let (zone, token_id) = self.admit(&request).await?;
        tracing::info!(zone, "zone connected (global -> zone)");
        self.mark_online(&zone, true).await;
        let (id, stats) = self.registry.stream_opened(&zone);
        self.metrics.kds_zone_connection(&zone, 1.0);
        let (tx, rx) = mpsc::channel(16);
        let incoming = request.into_inner();
        let (store, registry, replica, tokens, metrics) = (
            self.store.clone(),
            self.registry.clone(),
            self.replica.clone(),
            self.tokens.clone(),
            self.metrics.clone(),
        );
        tokio::spawn(async move {
            let source = GlobalSource {
                store: store.clone(),
                tokens,
                zone: zone.clone(),
                token_id,
            };
            let result = run_sender(
                store.clone(),
                incoming,
                tx,
                &source,
                "global->zone",
                Observed {
                    stats,
                    metrics: &metrics,
                },
            )
            .await;
            match result {
                Ok(()) => tracing::info!(zone, "zone disconnected (global -> zone)"),
                Err(e) => tracing::info!(zone, error = %e, "zone stream ended (global -> zone)"),
            }
            registry.stream_closed(&zone, id);
            metrics.kds_zone_connection(&zone, -1.0);
            if let Err(e) = store
                .close_session("", &super::zone_session_name(&zone), &replica)
                .await
            {
                tracing::warn!(zone, error = %e, "cannot record the zone's disconnection");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn zone_to_global_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryResponse>>,
    ) -> Result<Response<MessageStream<DeltaDiscoveryRequest>>, Status> {
        let (zone, _) = self.admit(&request).await?;
        tracing::info!(zone, "zone connected (zone -> global)");
        let (id, stats) = self.registry.stream_opened(&zone);
        self.metrics.kds_zone_connection(&zone, 1.0);
        let (tx, rx) = mpsc::channel(16);
        let incoming = request.into_inner();
        let (store, registry, replica, metrics) = (
            self.store.clone(),
            self.registry.clone(),
            self.replica.clone(),
            self.metrics.clone(),
        );
        tokio::spawn(async move {
            let mut tracker = OnlineTracker::new(store.clone(), replica);
            let result = run_receiver(
                store.clone(),
                Side::Global { zone: &zone },
                incoming,
                tx,
                DeltaDiscoveryRequest::default(),
                Some(&mut tracker),
                Observed {
                    stats,
                    metrics: &metrics,
                },
            )
            .await;
            tracker.close_all().await;
            registry.stream_closed(&zone, id);
            metrics.kds_zone_connection(&zone, -1.0);
            match result {
                Ok(()) => tracing::info!(zone, "zone disconnected (zone -> global)"),
                Err(e) => tracing::info!(zone, error = %e, "zone stream ended (zone -> global)"),
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
