//! The swarm's base checkpoint: the model every tab starts from, served at a stable URL with its
//! content hash so a tab can check what it downloaded before training on it.
//!
//! - `GET /api/checkpoint/base.json`: `{sha256, bytes, step, url}` — what the base is now.
//! - `GET /api/checkpoint/base`: the bytes; `ETag` is the content hash, so a tab revalidates cheaply.
//! - `GET /api/checkpoint/{sha256}`: the same bytes under their hash, cacheable forever.
//!
//! The relay checks the framing and the hash at start-up (`tabswarm_protocol::checkpoint::verify`)
//! and refuses to start on a damaged file; it does not interpret the parameters. The routes are in
//! `http::checkpoint`; this module knows nothing of the router.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tabswarm_protocol::checkpoint::verify;

use crate::error::StartError;

/// A verified checkpoint held in memory.
#[derive(Debug, Clone)]
pub struct BaseCheckpoint {
    bytes: Bytes,
    info: BaseInfo,
}

pub use tabswarm_protocol::checkpoint::BaseInfo;

impl BaseCheckpoint {
    /// Reads and verifies `path`; every failure names the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, StartError> {
        let bytes = std::fs::read(path).map_err(|source| StartError::CheckpointRead { path: path.into(), source })?;
        Self::from_bytes(Bytes::from(bytes), path)
    }

    /// Verifies `bytes` (held as they are, not copied) as the checkpoint `path` names in errors.
    pub(crate) fn from_bytes(bytes: Bytes, path: &Path) -> Result<Self, StartError> {
        let summary = verify(&bytes)
            .map_err(|reason| StartError::CheckpointRefused { path: PathBuf::from(path), reason })?
            .summary;
        let info = BaseInfo {
            url: format!("/api/checkpoint/{}", summary.payload_sha256),
            sha256: summary.payload_sha256,
            bytes: bytes.len(),
            step: summary.step,
        };
        Ok(Self { bytes, info })
    }

    pub fn info(&self) -> &BaseInfo {
        &self.info
    }

    /// The file's bytes (shared, not copied).
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The bytes as a response (`304` when `If-None-Match` names them); `immutable` for the URL
    /// named by the hash, which never changes.
    pub(crate) fn respond(&self, headers: &HeaderMap, immutable: bool) -> Response {
        respond(&self.bytes, &self.info.sha256, "base", headers, immutable)
    }
}

/// A swarm-model version's checkpoint under its hash (immutable).
pub(crate) fn respond_immutable(bytes: Bytes, hash: &str, headers: &HeaderMap) -> Response {
    respond(&bytes, hash, "model", headers, true)
}

fn respond(bytes: &Bytes, hash: &str, name: &str, headers: &HeaderMap, immutable: bool) -> Response {
    let etag = format!("\"{hash}\"");
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let file = format!("attachment; filename=\"tabswarm-{name}-{}.tswm\"", &hash[..hash.len().min(12)]);
        let mut response = bytes.clone().into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        if let Ok(value) = HeaderValue::from_str(&file) {
            h.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    };
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
pub(crate) mod tests {
    use tabswarm_protocol::checkpoint::{frame, sha256_hex};

    use super::*;

    /// A checkpoint the relay accepts (it checks framing and hash, not the parameters).
    pub(crate) fn example() -> Vec<u8> {
        let payload = b"pretend parameters".repeat(10);
        let header =
            serde_json::json!({"step": 40, "payload_len": payload.len(), "payload_sha256": sha256_hex(&payload)});
        frame(&serde_json::to_vec(&header).expect("json"), &payload)
    }

    #[test]
    fn a_damaged_file_is_refused_at_start_with_its_path_and_reason() {
        let mut bytes = example();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = BaseCheckpoint::from_bytes(Bytes::from(bytes), Path::new("base.tswm")).expect_err("corrupt");
        let message = err.to_string();
        assert!(message.starts_with("base checkpoint base.tswm is refused: checkpoint is corrupt"), "{message}");
        let err = BaseCheckpoint::load(Path::new("/nonexistent/base.tswm")).expect_err("missing");
        assert!(err.to_string().starts_with("cannot read base checkpoint /nonexistent/base.tswm: "), "{err}");
    }
}
