//! The native transport: TCP with noise and yamux on tokio (a relay's `--p2p-port`).

use std::time::Duration;

use alloy_primitives::B256;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;
use tabswarm_protocol::api::{ApiError, Bootstrap, ModelInfo, SwarmStats, UpdateAccepted};
use tabswarm_protocol::checkpoint::BaseInfo;
use tabswarm_protocol::identity::{BindingDomain, SignedBinding};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, identity, noise, tcp, yamux};

use super::{PeerBehaviour, PeerNode, dialable};

/// Whether a native peer can dial this address (TCP).
pub fn can_dial(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// A native peer node for `key`, dialling the TCP addresses among `relays`. Call from within a
/// tokio runtime.
pub fn node(
    key: identity::Keypair,
    relays: impl IntoIterator<Item = Multiaddr>,
    backend: &str,
) -> Result<PeerNode, String> {
    let agent = format!("tabswarm-peer/{} (native)", env!("CARGO_PKG_VERSION"));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| PeerBehaviour::new(key, agent.clone()))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(PeerNode::new(swarm, dialable(relays, can_dial), agent, backend.to_owned()))
}

/// How long one HTTP request to a relay may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET` over plain HTTP; `Ok(None)` for a 404.
async fn get(url: &str) -> Result<Option<Vec<u8>>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url}: only http:// relay URLs can be read natively; for an https relay pass its TCP multiaddr \
             from /api/bootstrap (…/tcp/<port>/p2p/<id>) as --relay"
        ));
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = async {
        let response = client.get(uri).await.map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        let body = response.into_body().collect().await.map_err(|e| format!("reading {url} failed: {e}"))?;
        Ok(Some(body.to_bytes().to_vec()))
    };
    tokio::time::timeout(HTTP_TIMEOUT, request)
        .await
        .map_err(|_| format!("{url} did not answer within {HTTP_TIMEOUT:?}"))?
}

/// `POST` of a binary body; the status and the body whatever the status.
async fn post(url: &str, body: Vec<u8>) -> Result<(http::StatusCode, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// relay URLs can be written to natively"));
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| format!("reading {url} failed: {e}"))?;
        Ok((status, body.to_bytes().to_vec()))
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url} did not answer within {HTTP_TIMEOUT:?}"))?
}

/// The relay's swarm model (`<relay>/api/model`) and, when `with_bytes`, the checkpoint of its
/// current version (framing and payload hash checked; the caller checks that the parameters hash
/// to the version's name after loading them). `None` when the relay runs no swarm model.
pub async fn fetch_model(relay_url: &str, with_bytes: bool) -> Result<Option<(ModelInfo, Option<Vec<u8>>)>, String> {
    let root = relay_url.trim_end_matches('/');
    let url = format!("{root}/api/model");
    let Some(bytes) = get(&url).await? else { return Ok(None) };
    let info: ModelInfo = serde_json::from_slice(&bytes).map_err(|e| format!("{url} is unreadable: {e}"))?;
    if !with_bytes {
        return Ok(Some((info, None)));
    }
    let bytes = fetch_version(root, &info).await?;
    Ok(Some((info, Some(bytes))))
}

/// The checkpoint of the version `info` names (as [`fetch_model`] read it), framing and payload
/// hash checked.
pub async fn fetch_version(relay_url: &str, info: &ModelInfo) -> Result<Vec<u8>, String> {
    let url = format!("{}{}", relay_url.trim_end_matches('/'), info.url);
    let bytes = get(&url).await?.ok_or_else(|| format!("{url}: not found (the relay no longer serves it)"))?;
    tabswarm_protocol::checkpoint::verify(&bytes).map_err(|e| format!("{url} is refused: {e}"))?;
    Ok(bytes)
}

/// What became of an update posted to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Accepted(UpdateAccepted),
    /// Refused: the relay's reason name (`too_old`, `unbound`, …) and words.
    Refused(ApiError),
}

/// Posts a signed update (`tabswarm_protocol::update::sign`) to `<relay>/api/model/updates`.
pub async fn post_update(relay_url: &str, signed: Vec<u8>) -> Result<UpdateOutcome, String> {
    let url = format!("{}/api/model/updates", relay_url.trim_end_matches('/'));
    let (status, body) = post(&url, signed).await?;
    if status.is_success() {
        let accepted = serde_json::from_slice(&body).map_err(|e| format!("{url} answered {status}: {e}"))?;
        return Ok(UpdateOutcome::Accepted(accepted));
    }
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(error) => Ok(UpdateOutcome::Refused(error)),
        Err(_) => Err(format!("{url} answered HTTP {status}: {}", String::from_utf8_lossy(&body))),
    }
}

/// A relay's bootstrap list (`<relay>/api/bootstrap`): the addresses to dial (the relay's own,
/// then the other relays it knows) and whether it accepts unbound peers' rollouts.
pub async fn fetch_bootstrap(relay_url: &str) -> Result<(Vec<Multiaddr>, bool), String> {
    let url = format!("{}/api/bootstrap", relay_url.trim_end_matches('/'));
    let bytes = get(&url).await?.ok_or_else(|| format!("{url}: not found (is this a Tabswarm relay?)"))?;
    let bootstrap: Bootstrap =
        serde_json::from_slice(&bytes).map_err(|e| format!("{url} is not a bootstrap list: {e}"))?;
    let addrs = bootstrap.addrs.iter().chain(bootstrap.relays.iter().flat_map(|r| r.addrs.iter()));
    Ok((addrs.filter_map(|a| a.parse().ok()).collect(), bootstrap.accepts_unbound))
}

/// What the relay sees of the swarm (`<relay>/api/swarm`): peers, rollouts, what it refused or
/// could not deliver.
pub async fn fetch_swarm_stats(relay_url: &str) -> Result<SwarmStats, String> {
    let url = format!("{}/api/swarm", relay_url.trim_end_matches('/'));
    let bytes = get(&url).await?.ok_or_else(|| format!("{url}: not found (is this a Tabswarm relay?)"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{url} is not the relay's swarm statistics: {e}"))
}

/// What a binding for this relay must name (`<relay>/api/identity`).
pub async fn fetch_identity(relay_url: &str) -> Result<BindingDomain, String> {
    let url = format!("{}/api/identity", relay_url.trim_end_matches('/'));
    let bytes = get(&url).await?.ok_or_else(|| format!("{url}: not found (a relay older than bindings?)"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{url} is not a binding domain: {e}"))
}

/// Binds `peer` to the wallet `wallet` for the relay's domain, valid for `validity_secs`.
pub fn bind_with_key(
    domain: &BindingDomain,
    wallet: &k256::ecdsa::SigningKey,
    peer: &identity::Keypair,
    validity_secs: u64,
) -> Result<SignedBinding, String> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let id = peer.public().to_peer_id().to_string();
    // Unique per (peer key, moment): a fresh key per run, and a relay refuses a reused nonce anyway.
    let nonce = sha2::Sha256::digest(format!("{id}:{}", since_epoch.as_nanos()).as_bytes());
    let now = since_epoch.as_secs();
    let binding = domain.binding(&id, B256::from_slice(&nonce), now, validity_secs);
    tabswarm_protocol::identity::sign_with_key(binding, domain, wallet, peer)
}

/// The relay's base checkpoint, checked against the hash it advertises; `None` when it serves none.
pub async fn fetch_base(relay_url: &str) -> Result<Option<(BaseInfo, Vec<u8>)>, String> {
    let root = relay_url.trim_end_matches('/');
    let url = format!("{root}/api/checkpoint/base.json");
    let Some(bytes) = get(&url).await? else { return Ok(None) };
    let info: BaseInfo = serde_json::from_slice(&bytes).map_err(|e| format!("{url} is unreadable: {e}"))?;
    let url = format!("{root}{}", info.url);
    let bytes = get(&url).await?.ok_or_else(|| format!("{url}: not found"))?;
    info.check(&bytes).map_err(|e| format!("the relay's base checkpoint is refused: {e}"))?;
    Ok(Some((info, bytes)))
}
