//! The built page (`web/dist`), loaded into memory at start and served with validators.
//!
//! Owns reading the asset folder and answering `GET` for its files: content type, ETag (a content
//! hash), `Cache-Control: no-cache` so browsers revalidate and get `304 Not Modified` when nothing
//! changed. It does not build the assets (`cargo xtask build` does) and serves nothing outside them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::StartError;

/// One file of the page.
#[derive(Debug)]
struct Asset {
    bytes: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
}

/// Every file of the built page, keyed by URL path without the leading `/`.
#[derive(Debug, Clone)]
pub struct AssetStore {
    files: Arc<HashMap<String, Asset>>,
}

impl AssetStore {
    /// Loads every file under `dir`. Fails, saying how to build them, if `dir/index.html` is absent.
    pub fn load(dir: &Path) -> Result<Self, StartError> {
        if !dir.join("index.html").is_file() {
            return Err(StartError::AssetsMissing { dir: dir.to_path_buf() });
        }
        let mut files = HashMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let entries = std::fs::read_dir(&current)
                .map_err(|source| StartError::AssetRead { path: current.clone(), source })?;
            for entry in entries {
                let path: PathBuf =
                    entry.map_err(|source| StartError::AssetRead { path: current.clone(), source })?.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let bytes =
                    std::fs::read(&path).map_err(|source| StartError::AssetRead { path: path.clone(), source })?;
                let Ok(rel) = path.strip_prefix(dir) else { continue };
                let key = rel.to_string_lossy().replace('\\', "/");
                files.insert(key.clone(), Asset::new(&key, Bytes::from(bytes)));
            }
        }
        Ok(Self { files: Arc::new(files) })
    }

    /// The page from files already in memory, keyed by URL path without the leading `/` (the
    /// page built into the binary). Fails like [`AssetStore::load`] when there is no `index.html`.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, Bytes)>) -> Result<Self, StartError> {
        let files: HashMap<String, Asset> =
            files.into_iter().map(|(key, bytes)| (key.to_owned(), Asset::new(key, bytes))).collect();
        if !files.contains_key("index.html") {
            return Err(StartError::AssetsMissing { dir: PathBuf::from("(built into this binary)") });
        }
        Ok(Self { files: Arc::new(files) })
    }

    /// Number of files loaded.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no files are loaded (never true for a store that loaded successfully).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Answers a request for `path` (`""` is the page itself), or `None` if no such file exists.
    pub fn respond(&self, path: &str, request_headers: &HeaderMap) -> Option<Response> {
        let key = if path.is_empty() { "index.html" } else { path };
        let asset = self.files.get(key)?;
        let fresh = request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
        let headers =
            [(header::ETAG, asset.etag.clone()), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
        if fresh {
            return Some((StatusCode::NOT_MODIFIED, headers).into_response());
        }
        let mut response = (headers, asset.bytes.clone()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, asset.content_type.clone());
        Some(response)
    }
}

impl Asset {
    fn new(key: &str, bytes: Bytes) -> Self {
        let digest = Sha256::digest(&bytes);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value");
        Self { bytes, content_type: content_type(Path::new(key)), etag }
    }
}

/// The MIME type for a file; browsers need `application/wasm` to stream-compile and
/// `text/javascript` to run module workers.
fn content_type(path: &Path) -> HeaderValue {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let mime = match ext {
        "wasm" => "application/wasm",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        _ => {
            return HeaderValue::from_str(mime_guess::from_ext(ext).first_or_octet_stream().as_ref())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        }
    };
    HeaderValue::from_static(mime)
}
