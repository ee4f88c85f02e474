//! Errors the relay reports: start-up failures (to the operator, one line each) and HTTP errors
//! (to the client, as a status and a short message).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The web assets have not been built (or `--assets` points elsewhere).
    #[error(
        "web assets not found: {dir} has no index.html. Build them with `cargo xtask build` (or build and serve with `cargo xtask run`), or point --assets / TABSWARM_ASSETS at a built web/dist"
    )]
    AssetsMissing { dir: PathBuf },
    /// Reading an asset failed.
    #[error("cannot read web asset {path}: {source}")]
    AssetRead { path: PathBuf, source: std::io::Error },
    /// A file built into the binary (`cargo xtask dist`) is not what was built in.
    #[error(
        "{name}, built into this binary, hashes to {found} instead of {expected} as built: the binary is damaged; install it again"
    )]
    EmbeddedDamaged { name: String, expected: String, found: String },
    /// `--assets` / `--base-checkpoint` were left out of a binary built without them.
    #[error(
        "this relay was built without the {0} inside: pass --assets (a built web/dist) and --base-checkpoint, or build the one-file relay with `cargo xtask dist`"
    )]
    NotEmbedded(&'static str),
    /// The base checkpoint file could not be read.
    #[error("cannot read base checkpoint {path}: {source}")]
    CheckpointRead { path: PathBuf, source: std::io::Error },
    /// The base checkpoint file is not a usable checkpoint.
    #[error("base checkpoint {path} is refused: {reason}")]
    CheckpointRefused { path: PathBuf, reason: tabswarm_protocol::checkpoint::FrameError },
    /// The listen address is taken or not ours to bind.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    /// The relay's data folder (its libp2p key and WebRTC certificate) cannot be used.
    #[error("relay identity in {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    /// The data folder cannot be created or written (read-only, not ours).
    #[error("data folder {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    /// The ledger file cannot be opened or migrated.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The registry on chain is unusable as configured.
    #[error("chain: {0}")]
    Chain(String),
    /// The swarm model's folder or its stored versions cannot be used.
    #[error("swarm model in {0}")]
    Model(String),
    /// The libp2p swarm could not be set up or could not listen.
    #[error("swarm: {0}")]
    Swarm(String),
}

impl StartError {
    /// Maps a bind failure to a message that tells the operator what to do.
    pub fn bind(addr: SocketAddr, error: &std::io::Error) -> Self {
        let reason = match error.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!(
                    "port {} is already in use (another relay running? choose one with --port or TABSWARM_PORT)",
                    addr.port()
                )
            }
            std::io::ErrorKind::PermissionDenied => {
                format!(
                    "permission denied for port {} (ports below 1024 need privileges; choose one with --port)",
                    addr.port()
                )
            }
            std::io::ErrorKind::AddrNotAvailable => {
                format!("{} is not an address of this machine (choose one with --host or TABSWARM_HOST)", addr.ip())
            }
            _ => error.to_string(),
        };
        Self::Bind { addr, reason }
    }
}

/// An HTTP error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("this relay serves no base checkpoint (its operator can start it with --base-checkpoint <file>)")]
    NoBaseCheckpoint,
    #[error("the relay's swarm is not running (it is starting or shutting down)")]
    SwarmUnavailable,
    /// A JSON API refusal: status, stable reason name, words.
    #[error("{message}")]
    Api { status: StatusCode, error: &'static str, message: String },
    /// A client over a route's per-IP limit (answered 429 `rate_limited` with `Retry-After`).
    #[error(
        "too many {what} from {ip}: at most {per_minute} a minute; try again in {} s",
        crate::http::limit::retry_after_secs(*retry_after)
    )]
    RateLimited { what: &'static str, ip: std::net::IpAddr, per_minute: u32, retry_after: std::time::Duration },
}

impl HttpError {
    pub fn api(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        HttpError::Api { status, error, message: message.into() }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = match self {
            HttpError::NotFound(_) | HttpError::NoBaseCheckpoint => StatusCode::NOT_FOUND,
            HttpError::SwarmUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Api { status, error, message } => {
                let body = tabswarm_protocol::api::ApiError { error: error.to_owned(), message };
                return (status, axum::Json(body)).into_response();
            }
            HttpError::RateLimited { retry_after, .. } => {
                let body = tabswarm_protocol::api::ApiError { error: "rate_limited".into(), message: self.to_string() };
                let wait = crate::http::limit::retry_after_secs(retry_after).to_string();
                return (StatusCode::TOO_MANY_REQUESTS, [(axum::http::header::RETRY_AFTER, wait)], axum::Json(body))
                    .into_response();
            }
        };
        (status, self.to_string()).into_response()
    }
}
