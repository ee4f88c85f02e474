//! `GET /api/checkpoint/base.json`, `/api/checkpoint/base` and `/api/checkpoint/{sha256}`: the
//! swarm's base checkpoint ([`crate::checkpoint`]) and the swarm model's versions over HTTP.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use crate::checkpoint::{BaseCheckpoint, BaseInfo};
use crate::error::HttpError;

fn configured(state: &AppState) -> Result<&BaseCheckpoint, HttpError> {
    state.base_checkpoint.as_deref().ok_or(HttpError::NoBaseCheckpoint)
}

pub(crate) async fn base_info(State(state): State<AppState>) -> Result<Json<BaseInfo>, HttpError> {
    Ok(Json(configured(&state)?.info().clone()))
}

pub(crate) async fn base_bytes(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    Ok(configured(&state)?.respond(&headers, false))
}

pub(crate) async fn by_hash(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    // A swarm-model version, named by the hash of its parameters (this relay's own, or the
    // mirrored relay's).
    if let Some(bytes) = state.model.as_ref().and_then(|m| m.checkpoint(&sha256)) {
        return Ok(crate::checkpoint::respond_immutable(bytes, &sha256, &headers));
    }
    if let Some(bytes) = super::model::mirrored_checkpoint(&state, &sha256).await? {
        return Ok(crate::checkpoint::respond_immutable(bytes, &sha256, &headers));
    }
    let base = configured(&state)?;
    if sha256 == base.info().sha256 {
        return Ok(base.respond(&headers, true));
    }
    Err(HttpError::NotFound(format!(
        "/api/checkpoint/{sha256} (this relay serves {} and the swarm model's recent versions, see /api/model)",
        base.info().url
    )))
}
