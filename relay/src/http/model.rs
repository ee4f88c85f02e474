//! `GET /api/model` and `POST /api/model/updates`: the swarm model ([`crate::model`]) over HTTP.
//! Versions' checkpoints are served by `GET /api/checkpoint/{sha256}` with the base's.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use tabswarm_protocol::api::{ModelInfo, UpdateAccepted};

use super::AppState;
use crate::error::HttpError;
use crate::model::mirror::MirrorError;
use crate::model::{ModelStore, UpdateRefusal};
use crate::swarm::unix_now;

pub(crate) fn model_of(state: &AppState) -> Result<&ModelStore, HttpError> {
    state.model.as_ref().ok_or(HttpError::NoBaseCheckpoint)
}

pub(crate) async fn info(State(state): State<AppState>) -> Result<Json<ModelInfo>, HttpError> {
    if let (None, Some(mirror)) = (&state.model, &state.model_mirror) {
        return mirror.info().await.map(Json).map_err(mirror_error);
    }
    Ok(Json(model_of(&state)?.info()))
}

fn mirror_error(e: MirrorError) -> HttpError {
    match e {
        MirrorError::Upstream(message) => HttpError::api(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            format!("this relay mirrors another relay's swarm model, which cannot be reached now: {message}"),
        ),
        MirrorError::Refused(status, error) => {
            HttpError::Api { status, error: crate::model::mirror::static_kind(&error.error), message: error.message }
        }
    }
}

/// A version's checkpoint from the mirrored relay (`None`: not a version it serves).
pub(crate) async fn mirrored_checkpoint(state: &AppState, hash: &str) -> Result<Option<Bytes>, HttpError> {
    match &state.model_mirror {
        Some(mirror) if tabswarm_protocol::update::is_version_hash(hash) => {
            mirror.checkpoint(hash).await.map_err(mirror_error)
        }
        _ => Ok(None),
    }
}

/// A signed update (`tabswarm_protocol::update::sign`), kept for the next outer step (202), or
/// refused with a stable reason (`error`) the sender can act on. Accepted updates are credited to
/// the sender's wallet in the ledger; refusals are logged there against the sender.
pub(crate) async fn post_update(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<UpdateAccepted>), HttpError> {
    let body = super::read_body(body, "a model update", super::MAX_UPDATE_BODY)?;
    if let (None, Some(mirror)) = (&state.model, &state.model_mirror) {
        let accepted = mirror.forward(body).await.map_err(mirror_error)?;
        return Ok((StatusCode::ACCEPTED, Json(accepted)));
    }
    let model = model_of(&state)?.clone();
    let ledger = &state.ledger;
    let bound_ledger = state.ledger.clone();
    let now = unix_now();
    let bound = move |peer: &str| bound_ledger.as_ref().is_some_and(|l| l.address_of(peer, now).is_ok());
    // Verifying and decompressing a multi-megabyte update is CPU work: off the async threads.
    let result = tokio::task::spawn_blocking(move || model.submit(&body, bound))
        .await
        .map_err(|e| HttpError::api(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match result {
        Ok((version, pending, peer)) => {
            if let Some(ledger) = ledger
                && let Err(e) = ledger.record_update(&version, &peer, now)
            {
                tracing::debug!(%peer, "update accepted but not credited: {e}");
            }
            Ok((StatusCode::ACCEPTED, Json(UpdateAccepted { version, pending })))
        }
        Err((refusal, peer)) => {
            if let Some(ledger) = ledger {
                ledger.reject(peer.as_deref(), refusal.kind(), &refusal.to_string(), now);
            }
            let status = match &refusal {
                UpdateRefusal::Refused(r) if r.kind() == "over_size" => StatusCode::PAYLOAD_TOO_LARGE,
                UpdateRefusal::Refused(r) if matches!(r.kind(), "too_old" | "duplicate") => StatusCode::CONFLICT,
                UpdateRefusal::Refused(r) if r.kind() == "unbound" => StatusCode::FORBIDDEN,
                UpdateRefusal::Graylisted { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            Err(HttpError::api(status, refusal.kind(), refusal.to_string()))
        }
    }
}
