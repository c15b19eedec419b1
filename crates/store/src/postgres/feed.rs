//! The change feed across replicas: `LISTEN` on the trigger's channel, drop this instance's
//! own writes, resync after a reconnection.

use super::*;

/// Turns one notification into a feed event; `None` for this instance's own writes (already
/// announced), for other schemas' tables (channels are database-wide) and for anything
/// unreadable.
pub(super) fn parse_notification(
    payload: &str,
    instance: &str,
    schema: &str,
) -> Option<ChangeEvent> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str());
    if field("origin") == Some(instance) || field("schema").is_some_and(|s| s != schema) {
        return None;
    }
    let kind = match field("op")? {
        "INSERT" | "UPDATE" => ChangeKind::Upsert,
        "DELETE" => ChangeKind::Delete,
        _ => return None,
    };
    Some(ChangeEvent {
        kind,
        rtype: ResourceType::from_name(field("type")?)?,
        mesh: field("mesh")?.to_string(),
        name: field("name")?.to_string(),
    })
}

/// The background task: republishes other replicas' changes, and a resync after every
/// reconnection of the listening connection.
pub(super) async fn follow_changes(
    mut listener: PgListener,
    pool: PgPool,
    feed: broadcast::Sender<ChangeEvent>,
    instance: String,
    schema: String,
    address: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => return,
            n = listener.try_recv() => n,
        };
        match next {
            Ok(Some(n)) => {
                if let Some(ev) = parse_notification(n.payload(), &instance, &schema) {
                    let _ = feed.send(ev);
                }
            }
            Ok(None) => {
                // The connection dropped and the listener has already reconnected and
                // re-issued LISTEN: whatever happened in between is unknown.
                tracing::warn!(%address, "PostgreSQL change notifications reconnected; resyncing");
                let _ = feed.send(ChangeEvent::resync());
            }
            Err(e) => {
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(%address, error = %e, "lost PostgreSQL change notifications; reconnecting");
                drop(listener);
                let mut backoff = Duration::from_millis(100);
                listener = loop {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match new_listener(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(%address, error = %e, "cannot listen for PostgreSQL changes yet");
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                tracing::info!(%address, "PostgreSQL change notifications back; resyncing");
                let _ = feed.send(ChangeEvent::resync());
            }
        }
    }
}
