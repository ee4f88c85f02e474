//! The identity and ledger endpoints: what to sign, posting a binding, the leaderboard, a peer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tabswarm_protocol::api::{BindingAccepted, LeaderboardEntry, PeerRecord, Registration};
use tabswarm_protocol::identity::{BindingDomain, SignedBinding};

use super::AppState;
use crate::error::HttpError;
use crate::ledger::{BindRefusal, Bound, Ledger};
use crate::swarm::unix_now;

/// Largest body `POST /api/bindings` reads (a binding is well under 2 KiB).
pub const MAX_BINDING_BODY: usize = 8 * 1024;

fn ledger_of(state: &AppState) -> Result<&Ledger, HttpError> {
    state
        .ledger
        .as_ref()
        .ok_or_else(|| HttpError::api(StatusCode::SERVICE_UNAVAILABLE, "no_ledger", "this relay keeps no ledger"))
}

fn storage(e: String) -> HttpError {
    tracing::error!("ledger: {e}");
    HttpError::api(StatusCode::INTERNAL_SERVER_ERROR, "storage", "the ledger cannot be read; see the relay's log")
}

/// `GET /api/identity`: the EIP-712 domain and fields a binding for this relay must carry.
pub async fn domain(State(state): State<AppState>) -> Json<BindingDomain> {
    Json(state.domain.clone())
}

/// `POST /api/bindings`: verify, store, pass on to the swarm. 201 when new, 200 when this very
/// binding was already stored; 400 for a bad binding, 409 when it conflicts with the ledger.
pub async fn post(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<BindingAccepted>), HttpError> {
    let ledger = ledger_of(&state)?;
    // The route's body limit is MAX_BINDING_BODY: nothing larger is buffered.
    let body = super::read_body(body, "a binding", MAX_BINDING_BODY)?;
    let now = unix_now();
    let signed: SignedBinding = serde_json::from_slice(&body).map_err(|e| {
        ledger.reject(None, "malformed", &format!("binding body: {e}"), now);
        HttpError::api(StatusCode::BAD_REQUEST, "malformed", format!("the body is not a signed binding: {e}"))
    })?;
    let peer_id = signed.binding.peer_id.clone();
    match ledger.bind(&signed, &state.domain, now) {
        Ok(bound) => {
            let accepted = BindingAccepted {
                peer_id: peer_id.clone(),
                address: bound.address().to_checksum(None),
                expires_at: signed.binding.expires_at,
            };
            if let Bound::New(address) = bound {
                tracing::info!(peer = %peer_id, %address, "peer bound over HTTP");
                if let Some(swarm) = &state.swarm {
                    // Best effort: the peer also announces its binding on gossip itself.
                    let _ = swarm.announce(signed).await;
                }
                Ok((StatusCode::CREATED, Json(accepted)))
            } else {
                Ok((StatusCode::OK, Json(accepted)))
            }
        }
        Err(refusal) => {
            let status = match &refusal {
                BindRefusal::Invalid(_) => StatusCode::BAD_REQUEST,
                BindRefusal::NonceReused { .. } | BindRefusal::PeerTaken { .. } => StatusCode::CONFLICT,
                BindRefusal::Storage(e) => return Err(storage(e.clone())),
                // Recording the refusal would need the room that is missing.
                BindRefusal::DiskFull => {
                    return Err(HttpError::api(StatusCode::INSUFFICIENT_STORAGE, refusal.kind(), refusal.to_string()));
                }
                // Nor can it be recorded in a read-only folder; the relay may be fixed soon.
                BindRefusal::ReadOnly => {
                    return Err(HttpError::api(StatusCode::SERVICE_UNAVAILABLE, refusal.kind(), refusal.to_string()));
                }
            };
            ledger.reject(Some(&peer_id), refusal.kind(), &refusal.to_string(), now);
            Err(HttpError::api(status, refusal.kind(), refusal.to_string()))
        }
    }
}

/// `GET /api/leaderboard`: addresses by verified reward.
pub async fn leaderboard(State(state): State<AppState>) -> Result<Json<Vec<LeaderboardEntry>>, HttpError> {
    Ok(Json(ledger_of(&state)?.leaderboard().map_err(storage)?))
}

/// `GET /api/peer/<id>`: one peer's binding, contributions and refusals.
pub async fn peer(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PeerRecord>, HttpError> {
    match ledger_of(&state)?.peer(&id).map_err(storage)? {
        Some(mut record) => {
            if let Some(chain) = &state.chain {
                // The chain's word, read now; a slow or failing node leaves it out (logged).
                match tokio::time::timeout(crate::chain::RPC_TIMEOUT, chain.owner_of(&id)).await {
                    Ok(Ok(owner)) => {
                        record.on_chain = Some(Registration {
                            registry: chain.registry().to_checksum(None),
                            owner: owner.map(|(a, _)| a.to_checksum(None)),
                            expires_at: owner.map(|(_, e)| e),
                        })
                    }
                    Ok(Err(e)) => tracing::warn!(peer = %id, "cannot read the registry: {e}"),
                    Err(_) => tracing::warn!(peer = %id, "the registry did not answer in time"),
                }
            }
            Ok(Json(record))
        }
        None => {
            Err(HttpError::api(StatusCode::NOT_FOUND, "unknown_peer", format!("this relay knows nothing of peer {id}")))
        }
    }
}
