//! The HTTP face of the relay: the page, `/healthz`, the swarm and ledger APIs, and the headers
//! every response carries.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tabswarm_protocol::Health;
use tabswarm_protocol::api::{Bootstrap, SwarmStats};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::assets::AssetStore;
use crate::checkpoint::BaseCheckpoint;
use crate::error::HttpError;
use crate::ledger::Ledger;
use crate::swarm::SwarmHandle;
use tabswarm_protocol::identity::BindingDomain;

mod checkpoint;
pub mod embed;
pub mod identity;
pub mod limit;
mod model;
pub mod server;

/// Content-Security-Policy for a page that will hold a wallet connection: only our own scripts
/// (plus `wasm-unsafe-eval`, which compiling WebAssembly requires), our own worker, no inline code,
/// no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
worker-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The largest update body the relay reads (a model of 16 M parameters at 8 bits, with scales).
pub const MAX_UPDATE_BODY: usize = 18 * 1024 * 1024;

/// Requests taking longer than this are answered 408 so a stuck client cannot hold a slot.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub assets: AssetStore,
    /// The swarm's base checkpoint, when the operator configured one.
    pub base_checkpoint: Option<std::sync::Arc<BaseCheckpoint>>,
    /// The relay's libp2p node (absent only in tests of the HTTP layer alone).
    pub swarm: Option<SwarmHandle>,
    /// Bindings, contributions and refusals (absent only in tests of the HTTP layer alone).
    pub ledger: Option<Ledger>,
    /// What bindings posted here must name.
    pub domain: BindingDomain,
    /// The registry on chain, when the relay was given `--rpc-url` and `--registry`.
    pub chain: Option<crate::chain::Chain>,
    /// The swarm model (with a base checkpoint).
    pub model: Option<crate::model::ModelStore>,
    /// Another relay's swarm model, mirrored (`--model-from`), when this relay runs none itself.
    pub model_mirror: Option<crate::model::mirror::ModelMirror>,
    /// Which sites may frame the widget's page (`--embed-from`).
    pub embedders: embed::Embedders,
    /// Requests per minute per client IP on the costly routes, and what the HTTP side refused.
    pub limits: limit::RequestLimits,
}

/// Headers every response carries, the widget's script and frame included.
const COMMON_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (HeaderName::from_static("permissions-policy"), "geolocation=(), payment=(), usb=()"),
];

/// The relay's router, with its middleware. Tests call it with `oneshot`, no socket needed.
pub fn app(state: AppState) -> Router {
    // Every page but the widget's: not frameable, not readable by other sites.
    let own_pages = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ];
    let limited = |route| axum::middleware::from_fn_with_state((state.limits.clone(), route), limit::limited);
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/bootstrap", get(bootstrap))
        .route("/api/swarm", get(swarm_stats))
        .route("/metrics", get(metrics))
        .route("/api/identity", get(identity::domain))
        .route(
            "/api/bindings",
            post(identity::post)
                .layer(axum::extract::DefaultBodyLimit::max(identity::MAX_BINDING_BODY))
                .layer(limited(limit::Route::Bindings)),
        )
        .route("/api/leaderboard", get(identity::leaderboard))
        .route("/api/peer/{id}", get(identity::peer))
        .route("/api/checkpoint/base.json", get(checkpoint::base_info))
        .route("/api/checkpoint/base", get(checkpoint::base_bytes).layer(limited(limit::Route::Downloads)))
        .route("/api/checkpoint/{sha256}", get(checkpoint::by_hash).layer(limited(limit::Route::Downloads)))
        .route("/api/model", get(model::info))
        .route(
            "/api/model/updates",
            post(model::post_update)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UPDATE_BODY))
                .layer(limited(limit::Route::Updates)),
        )
        .route("/", get(asset))
        .route("/{*path}", get(asset))
        .with_state(state.clone());
    for (name, value) in COMMON_HEADERS.into_iter().chain(own_pages) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    // The widget's script and frame, with their own headers (loadable and frameable by other sites).
    let widget =
        Router::new().route("/widget.js", get(embed::script)).route("/embed", get(embed::page)).with_state(state);
    router.merge(widget).layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
            .layer(CompressionLayer::new()),
    )
}

/// A request body read up to its route's limit, or the same JSON refusal as every other one
/// (413 `too_large` naming the limit) instead of axum's plain-text answer.
pub(crate) fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    what: &str,
    limit: usize,
) -> Result<axum::body::Bytes, HttpError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::api(status, "too_large", format!("{what} is over the limit of {limit} bytes"))
        } else {
            HttpError::api(status, "unreadable_body", format!("cannot read {what}: {rejection}"))
        }
    })
}

async fn healthz() -> Json<Health> {
    Json(Health::ok(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")))
}

fn swarm_of(state: &AppState) -> Result<&SwarmHandle, HttpError> {
    state.swarm.as_ref().ok_or(HttpError::SwarmUnavailable)
}

/// How to join the swarm through this relay (its addresses, with certhash) and the other relays.
async fn bootstrap(State(state): State<AppState>) -> Result<Json<Bootstrap>, HttpError> {
    Ok(Json(swarm_of(&state)?.bootstrap().await.map_err(|_| HttpError::SwarmUnavailable)?))
}

/// Peers, relays, rollouts per minute, rejections by reason, refused model updates by reason.
async fn swarm_stats(State(state): State<AppState>) -> Result<Json<SwarmStats>, HttpError> {
    let mut stats = swarm_of(&state)?.stats().await.map_err(|_| HttpError::SwarmUnavailable)?;
    if let Some(model) = &state.model {
        stats.updates_refused = model.refused();
    }
    stats.http_refused = state.limits.refusals().snapshot();
    Ok(Json(stats))
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let text = swarm_of(&state)?.metrics_text();
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

async fn asset(State(state): State<AppState>, headers: HeaderMap, request: Request) -> Result<Response, HttpError> {
    let path = request.uri().path().trim_start_matches('/');
    state.assets.respond(path, &headers).ok_or_else(|| HttpError::NotFound(request.uri().path().to_owned()))
}

#[cfg(test)]
mod tests;
