use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tabswarm_protocol::{Health, PROTOCOL_VERSION};
use tower::ServiceExt;

use super::embed::Embedders;
use super::*;
use crate::error::StartError;
use crate::swarm::SwarmConfig;
use crate::{Relay, RelayConfig};

const INDEX: &str = "<!doctype html><title>Tabswarm</title>";

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write asset");
    };
    write("index.html", INDEX.as_bytes());
    write("pkg/tabswarm_client_bg.wasm", &[0, b'a', b's', b'm', 1, 0, 0, 0]);
    // Large and repetitive, so compression has something to do.
    write("worker.js", "export const x = 1;\n".repeat(500).as_bytes());
    write("embed.html", b"<!doctype html><title>Contribute</title>");
    write("widget.js", b"customElements.define('tabswarm-widget', class extends HTMLElement {});");
    dir
}

fn state(dir: &Path) -> AppState {
    AppState {
        assets: AssetStore::load(dir).expect("load assets"),
        base_checkpoint: None,
        model: None,
        model_mirror: None,
        swarm: None,
        ledger: Some(crate::ledger::Ledger::in_memory().expect("ledger")),
        domain: crate::ledger::tests::domain(),
        chain: None,
        embedders: Default::default(),
        limits: Default::default(),
    }
}

fn router(dir: &Path) -> Router {
    app(state(dir))
}

fn router_with_base(dir: &Path) -> (Router, Vec<u8>) {
    let bytes = crate::checkpoint::tests::example();
    let file = dir.join("base.tswm");
    std::fs::write(&file, &bytes).expect("write checkpoint");
    let base = crate::BaseCheckpoint::load(&file).expect("valid checkpoint");
    let state = AppState { base_checkpoint: Some(base.into()), ..state(dir) };
    (app(state), bytes)
}

async fn body(response: Response) -> Vec<u8> {
    response.into_body().collect().await.expect("body").to_bytes().to_vec()
}

#[tokio::test]
async fn the_base_checkpoint_is_served_with_its_hash_and_revalidates() {
    let dir = site();
    let (router, bytes) = router_with_base(dir.path());
    let info = get(router.clone(), "/api/checkpoint/base.json", &[]).await;
    assert_eq!(info.status(), StatusCode::OK);
    let info: crate::checkpoint::BaseInfo = serde_json::from_slice(&body(info).await).expect("json");
    let verified = tabswarm_protocol::checkpoint::verify(&bytes).expect("valid");
    assert_eq!(info.sha256, verified.summary.payload_sha256);
    assert_eq!((info.bytes, info.step), (bytes.len(), 40));
    assert_eq!(info.url, format!("/api/checkpoint/{}", info.sha256));

    let response = get(router.clone(), "/api/checkpoint/base", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()[header::ETAG].to_str().expect("etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", info.sha256));
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(body(response).await, bytes);

    let again = get(router.clone(), "/api/checkpoint/base", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(body(again).await.is_empty());

    let by_hash = get(router.clone(), &info.url, &[]).await;
    assert_eq!(by_hash.status(), StatusCode::OK);
    assert!(by_hash.headers()[header::CACHE_CONTROL].to_str().expect("cc").contains("immutable"));
    assert_eq!(body(by_hash).await, bytes);

    let stale = get(router, &format!("/api/checkpoint/{}", "0".repeat(64)), &[]).await;
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    let text = String::from_utf8(body(stale).await).expect("utf8");
    assert!(text.contains(&format!("this relay serves {}", info.url)), "{text}");
}

#[tokio::test]
async fn without_a_base_checkpoint_the_api_says_how_to_configure_one() {
    let dir = site();
    for uri in ["/api/checkpoint/base", "/api/checkpoint/base.json"] {
        let response = get(router(dir.path()), uri, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        let text = String::from_utf8(body(response).await).expect("utf8");
        assert!(text.contains("--base-checkpoint"), "{uri}: {text}");
    }
}

async fn get(router: Router, uri: &str, headers: &[(header::HeaderName, &str)]) -> Response {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    router.oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible")
}

async fn body_text(response: Response) -> String {
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

#[tokio::test]
async fn index_is_served_with_security_and_cache_headers() {
    let dir = site();
    let response = get(router(dir.path()), "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self' 'wasm-unsafe-eval'"));
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    let etag = h[header::ETAG].to_str().expect("ascii etag");
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 26, "{etag}");
    assert_eq!(body_text(response).await, INDEX);
}

#[tokio::test]
async fn wasm_and_js_get_the_mime_types_browsers_require() {
    let dir = site();
    let wasm = get(router(dir.path()), "/pkg/tabswarm_client_bg.wasm", &[]).await;
    assert_eq!(wasm.status(), StatusCode::OK);
    assert_eq!(wasm.headers()[header::CONTENT_TYPE], "application/wasm");
    let js = get(router(dir.path()), "/worker.js", &[]).await;
    assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn matching_etag_answers_not_modified_and_a_stale_one_the_file() {
    let dir = site();
    let first = get(router(dir.path()), "/worker.js", &[]).await;
    let etag = first.headers()[header::ETAG].to_str().expect("etag").to_owned();
    let again = get(router(dir.path()), "/worker.js", &[(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert!(body_text(again).await.is_empty());
    let stale = get(router(dir.path()), "/worker.js", &[(header::IF_NONE_MATCH, "\"0000\"")]).await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let dir = site();
    let response = get(router(dir.path()), "/worker.js", &[(header::ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    let compressed = response.into_body().collect().await.expect("body").to_bytes();
    assert!(compressed.len() < 10_000 / 4, "gzip did not shrink 10 kB of repetition: {}", compressed.len());
}

#[tokio::test]
async fn unknown_paths_are_404_not_the_index() {
    let dir = site();
    for path in ["/nope", "/pkg/", "/../index.html", "/index.html/x"] {
        let response = get(router(dir.path()), path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let text = body_text(response).await;
        assert!(text.starts_with("not found: "), "{path}: {text}");
        assert!(!text.contains("<title>"), "{path} served the index");
    }
}

#[tokio::test]
async fn healthz_reports_service_and_protocol() {
    let dir = site();
    let response = get(router(dir.path()), "/healthz", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let health: Health = serde_json::from_str(&body_text(response).await).expect("health json");
    assert_eq!(health.service, "tabswarm-relay");
    assert_eq!(health.protocol, PROTOCOL_VERSION);
    assert!(health.is_compatible());
}

#[test]
fn missing_assets_say_which_command_builds_them() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = AssetStore::load(empty.path()).expect_err("no index.html");
    assert!(matches!(err, StartError::AssetsMissing { .. }));
    let message = err.to_string();
    assert!(message.contains("cargo xtask build"), "{message}");
    assert!(message.contains(&empty.path().display().to_string()), "{message}");
}

#[tokio::test]
async fn a_port_in_use_is_one_clear_error() {
    let dir = site();
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listen = taken.local_addr().expect("addr");
    let data = tempfile::tempdir().expect("tempdir");
    let config = RelayConfig {
        listen,
        assets: dir.path().to_path_buf().into(),
        base_checkpoint: None,
        model: Default::default(),
        model_from: None,
        swarm: SwarmConfig::local(data.path().to_path_buf()),
        chain: None,
        embedders: Default::default(),
    };
    let err = Relay::bind(&config).await.expect_err("port taken");
    let message = err.to_string();
    assert!(message.contains(&format!("port {} is already in use", listen.port())), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[tokio::test]
async fn serves_on_a_socket_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = site();
    let data = tempfile::tempdir().expect("tempdir");
    let relay = Relay::bind(&RelayConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        assets: dir.path().to_path_buf().into(),
        base_checkpoint: None,
        model: Default::default(),
        model_from: None,
        swarm: SwarmConfig::local(data.path().to_path_buf()),
        chain: None,
        embedders: Default::default(),
    })
    .await
    .expect("bind");
    let addr = relay.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay.serve(async move {
        let _ = stopped.await;
    }));

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("\"service\":\"tabswarm-relay\""), "{reply}");

    // The swarm endpoints answer from the running libp2p node.
    for (path, needle) in [
        ("/api/bootstrap", "/webrtc-direct/certhash/"),
        ("/api/swarm", "\"rollouts_per_minute\":0"),
        ("/metrics", "tabswarm_messages_rejected_total{reason=\"malformed\"} 0"),
        ("/api/swarm", "\"http_refused\":{\"bindings\":0,"),
        ("/metrics", "tabswarm_http_refused_total{limit=\"slow_headers\"} 0"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{path}: {reply}");
        assert!(reply.contains(needle), "{path} lacks {needle}: {reply}");
    }

    stop.send(()).expect("server alive");
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    result.expect("shut down within 5 s").expect("task").expect("serve ok");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

async fn post_json(router: Router, uri: &str, body: String) -> Response {
    let request = Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body));
    router.oneshot(request.expect("request")).await.expect("infallible")
}

async fn api_error(response: Response) -> tabswarm_protocol::api::ApiError {
    serde_json::from_slice(&body(response).await).expect("error json")
}

#[tokio::test]
async fn a_binding_posted_while_the_disk_is_full_gets_507_naming_it() {
    use crate::ledger::tests::{bind_as, wallet};
    use libp2p::identity::Keypair;
    let dir = site();
    let state = state(dir.path());
    let ledger = state.ledger.clone().expect("ledger");
    let router = app(state);
    let now = crate::swarm::unix_now();
    ledger.fill_the_disk();
    let mut refused = None;
    for nonce in 1..=200u8 {
        let signed =
            serde_json::to_string(&bind_as(&wallet(1), &Keypair::generate_ed25519(), nonce, now)).expect("json");
        let response = post_json(router.clone(), "/api/bindings", signed).await;
        if response.status() != StatusCode::CREATED {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("the full ledger refuses a binding");
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    let error = api_error(response).await;
    assert_eq!(error.error, "disk_full");
    assert!(error.message.contains("disk is full") && error.message.contains("try again later"), "{error:?}");
}

#[tokio::test]
async fn a_binding_posted_while_the_data_folder_is_read_only_gets_503_naming_it() {
    use crate::ledger::tests::{bind_as, wallet};
    use libp2p::identity::Keypair;
    let dir = site();
    let state = state(dir.path());
    let ledger = state.ledger.clone().expect("ledger");
    let router = app(state);
    let now = crate::swarm::unix_now();
    ledger.make_read_only(true);
    let signed = serde_json::to_string(&bind_as(&wallet(1), &Keypair::generate_ed25519(), 1, now)).expect("json");
    let response = post_json(router.clone(), "/api/bindings", signed.clone()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error = api_error(response).await;
    assert_eq!(error.error, "read_only");
    assert!(error.message.contains("data folder is read-only"), "{error:?}");
    ledger.make_read_only(false);
    assert_eq!(post_json(router, "/api/bindings", signed).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_binding_posted_over_http_is_stored_and_refusals_say_why() {
    use crate::ledger::tests::{bind_as, scored, wallet};
    use libp2p::identity::Keypair;
    let dir = site();
    let state = state(dir.path());
    let ledger = state.ledger.clone().expect("ledger");
    let router = app(state);
    let (alice, mallory, peer) = (wallet(1), wallet(2), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    let now = crate::swarm::unix_now();

    let identity = get(router.clone(), "/api/identity", &[]).await;
    let domain: BindingDomain = serde_json::from_slice(&body(identity).await).expect("domain");
    assert_eq!(domain, crate::ledger::tests::domain());

    let signed = serde_json::to_string(&bind_as(&alice, &peer, 1, now)).expect("json");
    let created = post_json(router.clone(), "/api/bindings", signed.clone()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let accepted: tabswarm_protocol::api::BindingAccepted = serde_json::from_slice(&body(created).await).expect("json");
    let address = alloy_primitives::Address::from_private_key(&alice).to_checksum(None);
    assert_eq!((accepted.peer_id.as_str(), accepted.address.as_str()), (id.as_str(), address.as_str()));
    assert_eq!(post_json(router.clone(), "/api/bindings", signed).await.status(), StatusCode::OK);

    // Another wallet claiming the same peer: 409 with the reason, the binding unchanged.
    let taken = post_json(
        router.clone(),
        "/api/bindings",
        serde_json::to_string(&bind_as(&mallory, &peer, 2, now)).expect("json"),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let err = api_error(taken).await;
    assert_eq!(err.error, "peer_taken");
    assert!(err.message.contains(&address), "{}", err.message);
    // An expired one: 400.
    let old = bind_as(&alice, &Keypair::generate_ed25519(), 3, now - 7200);
    let expired = post_json(router.clone(), "/api/bindings", serde_json::to_string(&old).expect("json")).await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api_error(expired).await.error, "expired");
    // Not a binding at all: 400 naming the missing field.
    let malformed = post_json(router.clone(), "/api/bindings", r#"{"binding": {}}"#.into()).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let err = api_error(malformed).await;
    assert_eq!(err.error, "malformed");
    assert!(err.message.contains("missing field"), "{}", err.message);
    // Over the 8 KiB limit, and far over it (read no further than the limit): the JSON refusal.
    for size in [9000, 3 * 1024 * 1024] {
        let huge = post_json(router.clone(), "/api/bindings", "x".repeat(size)).await;
        assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE, "{size} bytes");
        let err = api_error(huge).await;
        assert_eq!(err.error, "too_large", "{size} bytes");
        assert!(err.message.contains("a binding is over the limit of 8192 bytes"), "{}", err.message);
    }

    ledger.record(1, &id, &[scored(&id, 1)], now).expect("record");
    let board = get(router.clone(), "/api/leaderboard", &[]).await;
    assert_eq!(board.status(), StatusCode::OK);
    let board: Vec<tabswarm_protocol::api::LeaderboardEntry> =
        serde_json::from_slice(&body(board).await).expect("json");
    assert_eq!((board.len(), board[0].address.as_str(), board[0].rollouts), (1, address.as_str(), 2));
    let record = get(router.clone(), &format!("/api/peer/{id}"), &[]).await;
    let record: tabswarm_protocol::api::PeerRecord = serde_json::from_slice(&body(record).await).expect("json");
    assert_eq!(record.address.as_deref(), Some(address.as_str()));
    assert_eq!(record.rejections[0].kind, "peer_taken");
    let unknown = get(router, "/api/peer/12D3KooWnobody", &[]).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(api_error(unknown).await.error, "unknown_peer");
}

/// The swarm model over HTTP: `/api/model` names the version, a bound peer's signed update is
/// accepted (202) and credited, the step's version is served by its hash, refusals say why and are
/// counted in the ledger.
#[tokio::test]
async fn the_swarm_model_takes_signed_updates_and_serves_its_versions() {
    use crate::ledger::tests::{bind_as, wallet};
    use libp2p::identity::Keypair;
    use tabswarm_aggregate::{ModelUpdate, UpdateHeader};
    use tabswarm_protocol::api::{ModelInfo, UpdateAccepted};

    let dir = site();
    let device = burn::tensor::Device::flex();
    let config = tabswarm_model::ModelSize::Tiny.config();
    let base = tabswarm_model::checkpoint::save(&config.init(&device).expect("model"), &config, 0).expect("save");
    let settings = crate::model::ModelSettings {
        min_updates: 2,
        heldout: tabswarm_learn::HeldOut { levels: vec![1], per_level: 2 },
        ..Default::default()
    };
    let data = tempfile::tempdir().expect("data");
    let model = crate::model::ModelStore::open(data.path(), base.clone().into(), settings).expect("model store");
    let state = AppState { model: Some(model), ..state(dir.path()) };
    let ledger = state.ledger.clone().expect("ledger");
    let router = app(state);

    let info: ModelInfo =
        serde_json::from_slice(&body(get(router.clone(), "/api/model", &[]).await).await).expect("json");
    assert_eq!((info.number, info.pending, info.min_updates), (0, 0, 2));
    let len = tabswarm_model::params::parameter_count(&config.init(&device).expect("model"));
    let now = crate::swarm::unix_now();
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    for (i, key) in [&a, &b].into_iter().enumerate() {
        ledger.bind(&bind_as(&wallet(i as u8 + 1), key, 1, now), &crate::ledger::tests::domain(), now).expect("bound");
    }
    let update = |key: &Keypair, base: &str, len: usize| {
        let header =
            UpdateHeader { base: base.into(), peer: key.public().to_peer_id().to_string(), rounds: 10, params: 0 };
        let delta: Vec<f32> = (0..len).map(|i| 0.001 * ((i % 5) as f32 + 1.0)).collect();
        tabswarm_protocol::update::sign(&ModelUpdate::compress(header, &delta).expect("compress"), key).expect("sign")
    };
    let post = |bytes: Vec<u8>| {
        let router = router.clone();
        async move {
            let request = Request::post("/api/model/updates")
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from(bytes))
                .expect("request");
            router.oneshot(request).await.expect("infallible")
        }
    };
    let response = post(update(&a, &info.hash, len)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: UpdateAccepted = serde_json::from_slice(&body(response).await).expect("json");
    assert_eq!((accepted.version.as_str(), accepted.pending), (info.hash.as_str(), 1));
    // The wrong shape: 422 with the reason, logged against the peer.
    let response = post(update(&b, &info.hash, len + 3)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api_error(response).await.error, "wrong_shape");
    let b_id = b.public().to_peer_id().to_string();
    let record = ledger.peer(&b_id).expect("ledger").expect("known");
    assert_eq!(record.rejections[0].kind, "wrong_shape");
    // A body over the route's limit: 413 with the JSON refusal every other answer uses.
    let response = post(vec![0; super::MAX_UPDATE_BODY + 1]).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err = api_error(response).await;
    assert_eq!(err.error, "too_large");
    assert!(err.message.contains(&super::MAX_UPDATE_BODY.to_string()), "{}", err.message);
    // An unbound peer: 403.
    let stranger = Keypair::generate_ed25519();
    assert_eq!(post(update(&stranger, &info.hash, len)).await.status(), StatusCode::FORBIDDEN);
    // The second good update makes version 1 (the step runs on a blocking thread).
    assert_eq!(post(update(&b, &info.hash, len)).await.status(), StatusCode::ACCEPTED);
    let mut v1 = info.clone();
    for _ in 0..200 {
        v1 = serde_json::from_slice(&body(get(router.clone(), "/api/model", &[]).await).await).expect("json");
        if v1.number == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v1.number, 1, "no new version");
    assert_eq!(v1.parent.as_deref(), Some(info.hash.as_str()));
    assert_eq!(v1.updates, 2);
    let checkpoint = get(router.clone(), &v1.url, &[]).await;
    assert_eq!(checkpoint.status(), StatusCode::OK);
    assert!(checkpoint.headers()[header::CACHE_CONTROL].to_str().expect("cc").contains("immutable"));
    let bytes = body(checkpoint).await;
    let (loaded, _) = tabswarm_model::checkpoint::load(&bytes, Some(&config), &device).expect("a checkpoint");
    let flat = tabswarm_model::params::flatten(&loaded).await.expect("flatten");
    assert_eq!(tabswarm_protocol::update::params_hash(&flat), v1.hash);
    // The base is still served under its version hash, for peers catching up.
    assert_eq!(body(get(router.clone(), &format!("/api/checkpoint/{}", info.hash), &[]).await).await, base);
    // Both updates credited; an update for version 0 is now too old (409).
    assert_eq!(ledger.peer(&b_id).expect("ledger").expect("known").model_updates, 1);
    let response = post(update(&a, &info.hash, len)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(api_error(response).await.error, "too_old");
    let response = post(b"not an update".to_vec()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api_error(response).await.error, "bad_signature");
}

#[tokio::test]
async fn only_the_widget_frame_may_be_framed_and_only_the_widget_script_loads_cross_origin() {
    let dir = site();
    let only = Embedders::parse(&["https://blog.example".into(), "http://127.0.0.1:8000/".into()]).expect("origins");
    for (embedders, ancestors) in
        [(Embedders::Any, "frame-ancestors *"), (only, "frame-ancestors https://blog.example http://127.0.0.1:8000")]
    {
        let router = app(AppState { embedders, ..state(dir.path()) });
        let embed = get(router.clone(), "/embed", &[]).await;
        assert_eq!(embed.status(), StatusCode::OK);
        let csp = embed.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").to_owned();
        assert!(csp.ends_with(ancestors) && !csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval'"), "the rest of the policy stays: {csp}");
        assert!(!embed.headers().contains_key(header::X_FRAME_OPTIONS), "DENY would forbid every embedder");
        assert!(body_text(embed).await.contains("Contribute"));

        let script = get(router.clone(), "/widget.js", &[]).await;
        assert_eq!(script.status(), StatusCode::OK);
        let h = script.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "a module script from another site needs CORS");
        assert_eq!(h["cross-origin-resource-policy"], "cross-origin");
        assert!(h[header::CONTENT_TYPE].to_str().expect("ascii").contains("javascript"));

        // Every other page keeps refusing frames and other sites' reads.
        for uri in ["/", "/index.html", "/embed.html", "/worker.js"] {
            let response = get(router.clone(), uri, &[]).await;
            let h = response.headers();
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{uri}");
            assert!(h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").ends_with("frame-ancestors 'none'"));
            assert_eq!(h["cross-origin-resource-policy"], "same-origin", "{uri}");
            assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN), "{uri}");
        }
    }
}

#[test]
fn embedders_are_origins_and_a_bad_one_is_named() {
    assert_eq!(Embedders::parse(&[]), Ok(Embedders::Any));
    assert_eq!(Embedders::parse(&["*".into()]), Ok(Embedders::Any));
    assert_eq!(
        Embedders::parse(&["https://*.Example.org".into(), " http://localhost:3000 ".into()]),
        Ok(Embedders::Only(vec!["https://*.example.org".into(), "http://localhost:3000".into()]))
    );
    for (bad, why) in [
        ("blog.example", "starts with https://"),
        ("ftp://blog.example", "starts with https://"),
        ("https://blog.example/path", "not a host name"),
        ("https://blog.example; script-src *", "not a host name"),
        ("https://", "not a host name"),
        ("https://blog.example:99999", "the port"),
    ] {
        let err = Embedders::parse(&[bad.into()]).expect_err(bad);
        assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
    }
    let err = Embedders::parse(&["*".into(), "https://a.example".into()]).expect_err("mixed");
    assert!(err.contains("cannot be listed"), "{err}");
}

#[tokio::test]
async fn a_build_without_the_widget_says_how_to_make_it() {
    let dir = site();
    std::fs::remove_file(dir.path().join("widget.js")).expect("rm");
    let response = get(router(dir.path()), "/widget.js", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(body_text(response).await.contains("cargo xtask build"));
}

/// A request as if it came over a socket from `from`, with an optional `X-Forwarded-For`.
fn from_client(method: &str, uri: &str, from: &str, forwarded_for: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(hops) = forwarded_for {
        request = request.header("x-forwarded-for", hops);
    }
    let mut request = request.body(Body::from("{}")).expect("request");
    let addr = std::net::SocketAddr::new(from.parse().expect("ip"), 40000);
    request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
    request
}

async fn status_from(router: &Router, method: &str, uri: &str, from: &str, forwarded_for: Option<&str>) -> Response {
    router.clone().oneshot(from_client(method, uri, from, forwarded_for)).await.expect("infallible")
}

#[tokio::test]
async fn each_costly_route_answers_429_past_its_per_ip_rate_and_names_the_limit() {
    use crate::limits::{HttpRefusals, Limits};

    let dir = site();
    let limits = Limits { bindings_per_minute: 3, downloads_per_minute: 2, updates_per_minute: 1, ..Limits::default() };
    let refusals = HttpRefusals::default();
    let bytes = crate::checkpoint::tests::example();
    let file = dir.path().join("base.tswm");
    std::fs::write(&file, &bytes).expect("write checkpoint");
    let base = crate::BaseCheckpoint::load(&file).expect("valid checkpoint");
    let state = AppState {
        base_checkpoint: Some(base.into()),
        limits: limit::RequestLimits::new(std::sync::Arc::new(limits), refusals.clone()),
        ..state(dir.path())
    };
    let router = app(state);

    // Bindings: three a minute from 203.0.113.9 are read (and refused for their body), the
    // fourth is refused before its body is read.
    for _ in 0..3 {
        let response = status_from(&router, "POST", "/api/bindings", "203.0.113.9", None).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let response = status_from(&router, "POST", "/api/bindings", "203.0.113.9", None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "20", "a token every 20 s at 3 a minute");
    let error = api_error(response).await;
    assert_eq!(error.error, "rate_limited");
    assert_eq!(error.message, "too many bindings from 203.0.113.9: at most 3 a minute; try again in 20 s");
    // Another address has its own allowance; loopback (the operator's own) has no limit.
    let other = status_from(&router, "POST", "/api/bindings", "203.0.113.10", None).await;
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..10 {
        let local = status_from(&router, "POST", "/api/bindings", "127.0.0.1", None).await;
        assert_ne!(local.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // Through a reverse proxy on this machine the client named by the proxy is limited, and a
    // client cannot pose as another by writing the header itself.
    let proxied = status_from(&router, "POST", "/api/bindings", "127.0.0.1", Some("203.0.113.9")).await;
    assert_eq!(proxied.status(), StatusCode::TOO_MANY_REQUESTS);
    let spoofed = status_from(&router, "POST", "/api/bindings", "198.51.100.20", Some("127.0.0.1")).await;
    assert_ne!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);

    // Downloads: two checkpoints a minute; the small info document is not counted.
    for _ in 0..2 {
        let info = status_from(&router, "GET", "/api/checkpoint/base.json", "203.0.113.9", None).await;
        assert_eq!(info.status(), StatusCode::OK);
        let download = status_from(&router, "GET", "/api/checkpoint/base", "203.0.113.9", None).await;
        assert_eq!(download.status(), StatusCode::OK);
    }
    let third = status_from(&router, "GET", "/api/checkpoint/base", "203.0.113.9", None).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(api_error(third).await.message.starts_with("too many checkpoint downloads from 203.0.113.9: at most 2"));
    let by_hash =
        status_from(&router, "GET", &format!("/api/checkpoint/{}", "ab".repeat(32)), "203.0.113.9", None).await;
    assert_eq!(by_hash.status(), StatusCode::TOO_MANY_REQUESTS, "versions share the downloads' allowance");

    // Updates: one a minute (this relay runs no swarm model, so the first is refused for that).
    let first = status_from(&router, "POST", "/api/model/updates", "2001:db8::1", None).await;
    assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    let second = status_from(&router, "POST", "/api/model/updates", "2001:db8::2", None).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS, "one IPv6 /64 is one client");
    assert!(api_error(second).await.message.contains("too many model updates from 2001:db8::2"));

    let refused = refusals.snapshot();
    assert_eq!((refused["bindings"], refused["downloads"], refused["updates"]), (2, 2, 1), "{refused:?}");
}
