//! `GET /widget.js` and `GET /embed`: what a site owner's page loads to let its visitors contribute.
//!
//! `/widget.js` is the `<tabswarm-widget>` element (an ES module, no wasm): any site may load it,
//! so it is served with CORS and `Cross-Origin-Resource-Policy: cross-origin`. `/embed` is the page
//! the element frames: the consent card, and after the visitor's click the learning run, in this
//! relay's origin (its keys, storage, wallet and GPU out of the host page's reach). It is the one
//! page that may be framed, by any site or by the origins the operator lists (`--embed-from`);
//! every other page keeps `frame-ancestors 'none'` and `X-Frame-Options: DENY`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{AppState, COMMON_HEADERS, CONTENT_SECURITY_POLICY};
use crate::error::HttpError;

/// Which sites may frame `/embed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Embedders {
    /// Any site (the default: the widget is meant to be pasted anywhere).
    #[default]
    Any,
    /// Only these origins (`https://blog.example`, or `https://*.example` for its subdomains).
    Only(Vec<String>),
}

impl Embedders {
    /// Reads `--embed-from`: origins, or `*` for any site (also what an empty list means). Names
    /// the first entry that is not an origin.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let list: Vec<&str> = list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
        if list.is_empty() || list == ["*"] {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for entry in list {
            origins.push(origin(entry).map_err(|why| format!("--embed-from {entry:?}: {why}"))?);
        }
        Ok(Self::Only(origins))
    }

    /// The CSP source list of `frame-ancestors`.
    pub fn frame_ancestors(&self) -> String {
        match self {
            Self::Any => "*".to_owned(),
            Self::Only(origins) => origins.join(" "),
        }
    }
}

/// An origin as CSP takes it: `http` or `https`, a host (optionally `*.` for its subdomains) and an
/// optional port; no path, query or anything a header could be split on.
fn origin(entry: &str) -> Result<String, &'static str> {
    if entry == "*" {
        return Err("`*` (any site) cannot be listed with origins");
    }
    let rest = entry
        .strip_prefix("https://")
        .or_else(|| entry.strip_prefix("http://"))
        .ok_or("an origin starts with https:// or http://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err("not a host name (letters, digits, '-' and '.'; no path)");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("the port is not a number from 0 to 65535");
    }
    Ok(entry.strip_suffix('/').unwrap_or(entry).to_ascii_lowercase())
}

/// The page `<tabswarm-widget>` frames, allowed to be framed by the operator's embedders.
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, HttpError> {
    let mut response = widget_file(&state, "embed.html", &headers, &request)?;
    let policy = CONTENT_SECURITY_POLICY
        .replace("frame-ancestors 'none'", &format!("frame-ancestors {}", state.embedders.frame_ancestors()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&policy).map_err(|_| {
            HttpError::api(StatusCode::INTERNAL_SERVER_ERROR, "bad_embedders", "--embed-from gave no valid header")
        })?,
    );
    common(headers);
    Ok(response)
}

/// `<tabswarm-widget>`, loadable as a module script from any site.
pub(crate) async fn script(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, HttpError> {
    let mut response = widget_file(&state, "widget.js", &headers, &request)?;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin"));
    common(headers);
    Ok(response)
}

fn common(headers: &mut HeaderMap) {
    for (name, value) in COMMON_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// One of the page build's widget files, or a 404 that says how to build them.
fn widget_file(state: &AppState, name: &str, headers: &HeaderMap, request: &Request) -> Result<Response, HttpError> {
    state.assets.respond(name, headers).ok_or_else(|| {
        HttpError::NotFound(format!(
            "{} (the page build has no widget; rebuild it with `cargo xtask build`)",
            request.uri().path()
        ))
    })
}
