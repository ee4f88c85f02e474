//! Several relays, one swarm model: a relay started with `--model-from <url>` keeps no lineage of
//! its own. It answers `/api/model` with the upstream relay's, serves the upstream's versions
//! (fetched once, checked, cached) and passes the updates its peers post on to the upstream, after
//! checking their signature itself (so junk is refused here and never forwarded). Peers on either
//! relay then feed and follow one lineage. The upstream relay is the one place versions are made:
//! while it is unreachable this relay answers 503 and its peers keep training on what they have.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use tabswarm_protocol::api::{ApiError, ModelInfo, UpdateAccepted};

/// How long one request to the upstream relay may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Versions kept in memory.
const CACHED_VERSIONS: usize = 8;

/// The upstream relay's swarm model, seen from here.
#[derive(Debug, Clone)]
pub struct ModelMirror {
    upstream: String,
    client: reqwest::Client,
    cache: Arc<Mutex<Vec<(String, Bytes)>>>,
}

/// What went wrong talking to the upstream relay, or what it refused.
#[derive(Debug)]
pub enum MirrorError {
    /// The upstream is unreachable or answered nonsense.
    Upstream(String),
    /// The upstream (or this relay's own check) refused: status and body.
    Refused(StatusCode, ApiError),
}

impl ModelMirror {
    pub fn new(upstream: &str) -> Result<Self, String> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let url: reqwest::Url = upstream.parse().map_err(|e| format!("--model-from {upstream}: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("--model-from {upstream}: expected an http:// or https:// relay URL"));
        }
        crate::chain::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .map_err(|e| format!("--model-from {upstream}: {e}"))?;
        Ok(Self { upstream, client, cache: Arc::default() })
    }

    /// The upstream relay's URL.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), MirrorError> {
        let url = format!("{}{path}", self.upstream);
        let response = self.client.get(&url).send().await.map_err(|e| MirrorError::Upstream(format!("{url}: {e}")))?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = response.bytes().await.map_err(|e| MirrorError::Upstream(format!("{url}: {e}")))?;
        Ok((status, body))
    }

    /// The upstream's `/api/model`.
    pub async fn info(&self) -> Result<ModelInfo, MirrorError> {
        let (status, body) = self.get("/api/model").await?;
        if !status.is_success() {
            return Err(MirrorError::Upstream(format!("{}/api/model answered HTTP {status}", self.upstream)));
        }
        serde_json::from_slice(&body)
            .map_err(|e| MirrorError::Upstream(format!("{}/api/model is unreadable: {e}", self.upstream)))
    }

    /// A version's checkpoint: from the cache, or fetched from the upstream and checked (its
    /// framing and payload hash; peers check that the parameters hash to the version's name).
    pub async fn checkpoint(&self, hash: &str) -> Result<Option<Bytes>, MirrorError> {
        if let Some((_, bytes)) = self.lock().iter().find(|(h, _)| h == hash) {
            return Ok(Some(bytes.clone()));
        }
        let (status, body) = self.get(&format!("/api/checkpoint/{hash}")).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(MirrorError::Upstream(format!("the upstream answered HTTP {status} for {hash}")));
        }
        tabswarm_protocol::checkpoint::verify(&body)
            .map_err(|e| MirrorError::Upstream(format!("the upstream's checkpoint {hash} is refused: {e}")))?;
        let mut cache = self.lock();
        cache.insert(0, (hash.to_owned(), body.clone()));
        cache.truncate(CACHED_VERSIONS);
        Ok(Some(body))
    }

    /// Checks a signed update's envelope and signature here, then posts it to the upstream and
    /// returns its answer.
    pub async fn forward(&self, body: Bytes) -> Result<UpdateAccepted, MirrorError> {
        if let Err(e) = tabswarm_protocol::update::verify_signed(&body) {
            let error = ApiError { error: e.kind().to_owned(), message: e.to_string() };
            return Err(MirrorError::Refused(StatusCode::UNPROCESSABLE_ENTITY, error));
        }
        let url = format!("{}/api/model/updates", self.upstream);
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| MirrorError::Upstream(format!("{url}: {e}")))?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = response.bytes().await.map_err(|e| MirrorError::Upstream(format!("{url}: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| MirrorError::Upstream(format!("{url} answered {status}: {e}")));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => Err(MirrorError::Refused(status, error)),
            Err(_) => Err(MirrorError::Upstream(format!("{url} answered HTTP {status}"))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Bytes)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The refusal names a relay answers with (`ApiError::error` is `&'static str` in this relay):
/// the upstream's name when it is one of ours, else `refused`.
pub fn static_kind(kind: &str) -> &'static str {
    let mut ours = tabswarm_aggregate::REFUSAL_KINDS.into_iter().chain([crate::model::GRAYLISTED]);
    ours.find(|k| *k == kind).unwrap_or("refused")
}
