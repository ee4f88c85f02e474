//! The page (main thread): renders what the worker reports, runs the swarm node and the identity
//! panel, and hands rollout groups between the node and the worker. Thin: the words come from
//! [`crate::messages`], the names from [`crate::ui`], the markup from `index.html`'s templates.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::StreamExt;
use tabswarm_learn::run::{Backend, FamilyAccuracy};
use tabswarm_model::ModelSize;
use tabswarm_net::{ConnectionState, NetStats, NodeCommand, NodeEvent, describe_connection};
use tabswarm_protocol::api::Bootstrap;
use tabswarm_protocol::tasks::{Family, generate, pose};
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::dom::Dom;
use crate::http::fetch_text;
use crate::identity::Identity;
use crate::keystore::KeyStore;
use crate::messages::{
    BackendChoice, CheckRequest, Pace, SavedModel, TrainRequest, WorkerReport, WorkerRequest, backend_label,
    progress_line, size_from_query, train_options_from_query,
};
use crate::ui::{data, id, template};

/// Seed of the page's random matrices and model (any fixed value: results are checked, not compared).
const PAGE_SEED: u64 = 0x7ab5_3a2d;

struct Page {
    dom: Rc<Dom>,
    worker: Worker,
    train_size: ModelSize,
    train_rounds: u32,
    /// Whether the worker found a WebGPU adapter (None until it has looked).
    webgpu: Cell<Option<bool>>,
    /// Checkpoint bytes the worker sent ahead of their [`WorkerReport::ModelSaved`].
    checkpoint: RefCell<Option<js_sys::Uint8Array>>,
    /// The object URL of the offered checkpoint, revoked when a newer one replaces it.
    checkpoint_url: RefCell<Option<String>>,
    /// Mean reward of every round of the current run, for the sparkline.
    rewards: RefCell<Vec<f32>>,
    /// The swarm node's command channel and this tab's peer id, once the node runs.
    net: RefCell<Option<futures::channel::mpsc::Sender<NodeCommand>>>,
    peer_id: RefCell<Option<String>>,
    /// The tab's peer key (signs its swarm-model updates), once the node runs.
    key: RefCell<Option<libp2p::identity::Keypair>>,
    /// The tab's wallet binding, once the node runs: whether the relay would take its updates.
    identity: RefCell<Option<Rc<Identity>>>,
    /// Swarm-model updates sent and accepted in this visit.
    updates: Cell<(u64, u64)>,
    /// The swarm-model version the run trains on.
    training_version: Cell<Option<u64>>,
    /// Whether a learning run is going.
    training: Cell<bool>,
    /// Whether the worker has said [`WorkerReport::Ready`]: a module worker drops what is posted
    /// to it while its wasm still loads, so until then requests wait in `queued` (a click on
    /// *Train* the moment the page appears is kept, not lost).
    ready: Cell<bool>,
    queued: RefCell<Vec<String>>,
}

impl Page {
    fn status(&self, state: &str, text: &str) {
        self.dom.set_state(id::STATUS, state, text);
    }

    /// Sends `request` to the worker, or keeps it until the worker is ready.
    fn send(&self, request: &WorkerRequest) {
        let json = match serde_json::to_string(request) {
            Ok(json) => json,
            Err(e) => return self.status("error", &format!("Cannot encode a request for the worker: {e}")),
        };
        if !self.ready.get() {
            self.queued.borrow_mut().push(json);
            return;
        }
        self.post(json);
    }

    fn post(&self, json: String) {
        if let Err(e) = self.worker.post_message(&json.into()) {
            self.status("error", &format!("Cannot talk to the worker: {e:?}"));
        }
    }

    /// The worker listens now: hands it what waited, in order.
    fn worker_ready(&self) {
        self.ready.set(true);
        let waiting: Vec<String> = self.queued.borrow_mut().drain(..).collect();
        for json in waiting {
            self.post(json);
        }
    }
}

thread_local! {
    /// The page, for [`set_pace`] (the page's JavaScript calls it).
    static PAGE: RefCell<Option<Rc<Page>>> = const { RefCell::new(None) };
}

/// Paces the learning run from the page's JavaScript (`web/polite.js`): `budget` percent of wall
/// time (1–100), or none at all while `paused` (the tab hidden, a low battery, the CPU under
/// pressure, or the visitor's pause). Takes effect at the end of the current round; the run keeps
/// its place.
#[wasm_bindgen]
pub fn set_pace(budget: u8, paused: bool) -> Result<(), JsError> {
    PAGE.with(|page| match page.borrow().as_ref() {
        Some(page) => {
            page.send(&WorkerRequest::Pace(Pace { budget, paused }));
            Ok(())
        }
        None => Err(JsError::new("set_pace needs start_page to have run")),
    })
}

/// Runs on the page: reports whether this browser has WebGPU, starts the worker and renders what it
/// reports. Never leaves the page blank: every failure becomes a sentence on the page.
#[wasm_bindgen]
pub fn start_page() -> Result<(), JsError> {
    let window = web_sys::window().ok_or_else(|| JsError::new("no window: start_page must run on the page"))?;
    let document = window.document().ok_or_else(|| JsError::new("no document"))?;
    let query = window.location().search().unwrap_or_default();
    let (n, warning) = size_from_query(&query);
    let (train_size, train_rounds) = train_options_from_query(&query);

    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("./worker.js", &options)
        .map_err(|e| JsError::new(&format!("cannot start the Web Worker: {e:?}")))?;
    let page = Rc::new(Page {
        dom: Rc::new(Dom { document }),
        worker,
        train_size,
        train_rounds,
        webgpu: Cell::new(None),
        checkpoint: RefCell::new(None),
        key: RefCell::new(None),
        identity: RefCell::new(None),
        updates: Cell::new((0, 0)),
        training_version: Cell::new(None),
        training: Cell::new(false),
        checkpoint_url: RefCell::new(None),
        rewards: RefCell::new(Vec::new()),
        net: RefCell::new(None),
        peer_id: RefCell::new(None),
        ready: Cell::new(false),
        queued: RefCell::new(Vec::new()),
    });
    PAGE.with(|slot| *slot.borrow_mut() = Some(Rc::clone(&page)));

    let has_webgpu = js_sys::Reflect::get(&window.navigator(), &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined());
    if has_webgpu {
        page.dom.set(id::ADAPTER, "WebGPU is available; asking for an adapter…");
    } else {
        page.dom.set(id::ADAPTER, "This browser does not offer WebGPU (navigator.gpu is missing). Tabswarm will use the CPU path instead, which is much slower. Chrome/Edge 113+ or a browser with WebGPU enabled gives the full speed.");
        page.dom.enable(id::TRAIN_WEBGPU, false);
    }
    if let Some(warning) = warning {
        page.dom.set(id::NOTE, &warning);
    }
    page.status("pending", &format!("Starting the worker for a {n}×{n} matmul check…"));

    let onmessage = {
        let page = Rc::clone(&page);
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            if let Some(bytes) = data.dyn_ref::<js_sys::Uint8Array>() {
                *page.checkpoint.borrow_mut() = Some(bytes.clone());
                return;
            }
            let text = data.as_string().unwrap_or_default();
            match serde_json::from_str::<WorkerReport>(&text) {
                Ok(WorkerReport::Update { number, .. }) => {
                    if let Some(bytes) = page.checkpoint.borrow_mut().take() {
                        wasm_bindgen_futures::spawn_local(send_update(Rc::clone(&page), bytes.to_vec(), number));
                    }
                }
                Ok(report) => render(&page, report, n),
                Err(e) => page.status("error", &format!("The worker sent a message the page cannot read ({e}).")),
            }
        })
    };
    page.worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget(); // lives as long as the page

    let onerror = {
        let page = Rc::clone(&page);
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            let message = format!("The worker stopped: {} — reload the page to retry.", event.message());
            page.status("error", &message);
            page.dom.set_state(id::TRAIN_STATUS, "error", &message);
        })
    };
    page.worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onerror.forget();

    let save_click = {
        let page = Rc::clone(&page);
        Closure::<dyn FnMut()>::new(move || {
            page.dom.enable(id::TRAIN_SAVE, false);
            page.dom.set(id::TRAIN_SAVE_STATUS, "Saving the model…");
            page.send(&WorkerRequest::SaveModel);
        })
    };
    if let Some(button) = page.dom.button(id::TRAIN_SAVE) {
        button.set_onclick(Some(save_click.as_ref().unchecked_ref()));
    }
    save_click.forget();

    for (id, backend) in
        [(id::TRAIN_WEBGPU, Some(Backend::WebGpu)), (id::TRAIN_CPU, Some(Backend::Cpu)), (id::TRAIN_STOP, None)]
    {
        let page_for_click = Rc::clone(&page);
        let onclick = Closure::<dyn FnMut()>::new(move || {
            let page = &page_for_click;
            match backend {
                Some(backend) => {
                    page.dom.enable(id::TRAIN_WEBGPU, false);
                    page.dom.enable(id::TRAIN_CPU, false);
                    page.dom.enable(id::TRAIN_STOP, true);
                    page.dom.enable(id::TRAIN_SAVE, false);
                    page.dom.set_state(
                        id::TRAIN_STATUS,
                        "running",
                        &format!("Starting to learn on {}…", backend_label(backend)),
                    );
                    page.rewards.borrow_mut().clear();
                    page.training.set(true);
                    page.send(&WorkerRequest::Train(TrainRequest {
                        backend,
                        model: page.train_size,
                        rounds: page.train_rounds,
                        seed: PAGE_SEED,
                        peer: page.peer_id.borrow().clone(),
                    }));
                }
                None => page.send(&WorkerRequest::Stop),
            }
        });
        if let Some(button) = page.dom.button(id) {
            button.set_onclick(Some(onclick.as_ref().unchecked_ref()));
        }
        onclick.forget();
    }
    wire_try_the_model(&page);
    // The markup keeps the buttons disabled until they do something: a click before now would
    // have gone nowhere.
    page.dom.enable(id::TRAIN_CPU, true);
    page.dom.enable(id::TRAIN_WEBGPU, has_webgpu);
    {
        let (window, page) = (window.clone(), Rc::clone(&page));
        wasm_bindgen_futures::spawn_local(async move {
            show_swarm_model(window, page).await;
        });
    }
    wasm_bindgen_futures::spawn_local(join_swarm(window, Rc::clone(&page)));
    Ok(())
}

/// Signs a swarm-model update from the worker with the tab's key and posts it to the relay, shows
/// what became of it, and asks the worker to move onto a newer version if there is one. A tab the
/// relay would refuse (not bound to a wallet, on a relay that takes only bound peers' updates)
/// sends nothing and still trains on each new version.
async fn send_update(page: Rc<Page>, encoded: Vec<u8>, number: u64) {
    let Some(window) = web_sys::window() else { return };
    let feeds = page.identity.borrow().as_ref().is_some_and(|identity| identity.can_feed());
    if !feeds {
        let (sent, accepted) = page.updates.get();
        page.dom.set_state(
            id::SWARM_UPDATES,
            "unbound",
            &format!(
                "Updates to the swarm model from this tab: {sent} sent, {accepted} accepted. Update for swarm version \
                 {number} not sent: this relay takes updates only from tabs bound to a wallet. This tab still trains \
                 on each new swarm version."
            ),
        );
        follow_versions(&window, &page).await;
        return;
    }
    let outcome = async {
        let key = page.key.borrow().clone().ok_or("the tab has no peer key yet")?;
        let update = tabswarm_protocol::update::ModelUpdate::decode(&encoded).map_err(|e| e.to_string())?;
        let signed = tabswarm_protocol::update::sign(&update, &key).map_err(|e| e.to_string())?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&js_sys::Uint8Array::from(signed.as_slice()));
        let url = "/api/model/updates";
        let response = crate::http::fetch(window.fetch_with_str_and_init(url, &init), url).await?;
        let text = crate::http::response_text(&response, url).await?;
        Ok::<_, String>((response.ok(), text))
    }
    .await;
    let (mut sent, mut accepted) = page.updates.get();
    sent += 1;
    let (state, line) = match outcome {
        Ok((true, _)) => {
            accepted += 1;
            ("sent", format!("Update for swarm version {number} accepted."))
        }
        Ok((false, text)) => match serde_json::from_str::<tabswarm_protocol::api::ApiError>(&text) {
            Ok(e) => ("refused", format!("Update for swarm version {number} refused: {} ({}).", e.message, e.error)),
            Err(_) => ("error", format!("Update for swarm version {number}: the relay answered {text}")),
        },
        Err(e) => ("error", format!("Update for swarm version {number} not sent: {e}")),
    };
    page.updates.set((sent, accepted));
    page.dom.set_state(
        id::SWARM_UPDATES,
        state,
        &format!("Updates to the swarm model from this tab: {sent} sent, {accepted} accepted. {line}"),
    );
    page.dom.set_data(id::SWARM_UPDATES, &[(data::SENT, &sent.to_string()), (data::ACCEPTED, &accepted.to_string())]);
    follow_versions(&window, &page).await;
}

/// Until a newer version appears (made from this tab's update or others'): looks every few
/// seconds, shows it, and has the worker train on from it. The relay steps when enough updates are
/// in, or after its --max-wait-secs; a tab that stopped training stops looking.
async fn follow_versions(window: &web_sys::Window, page: &Rc<Page>) {
    for _ in 0..VERSION_POLLS {
        if move_to_newer_version(window.clone(), Rc::clone(page)).await {
            return;
        }
        if !page.training.get() {
            return;
        }
        sleep_ms(window, VERSION_POLL_MS).await;
    }
}

/// Shows the relay's current swarm model and asks the worker to train on from it if it is newer
/// than the version the tab trains on; says whether it asked.
async fn move_to_newer_version(window: web_sys::Window, page: Rc<Page>) -> bool {
    match show_swarm_model(window, Rc::clone(&page)).await {
        Some(info) if page.training_version.get().is_some_and(|v| info.number > v) => {
            page.send(&WorkerRequest::Adopt { hash: info.hash, number: info.number });
            true
        }
        _ => false,
    }
}

/// How often, and how many times, the page looks for a newer swarm-model version after an update.
const VERSION_POLL_MS: i32 = 2_000;
const VERSION_POLLS: u32 = 300;

async fn sleep_ms(window: &web_sys::Window, ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Shows the relay's swarm model (`/api/model`): its version, lineage and held-out accuracy, and
/// a link to download it. Returns what it showed.
async fn show_swarm_model(window: web_sys::Window, page: Rc<Page>) -> Option<tabswarm_protocol::api::ModelInfo> {
    let response = match crate::http::fetch(window.fetch_with_str("/api/model"), "/api/model").await {
        Ok(response) => response,
        Err(e) => {
            page.dom.set_state(id::SWARM_MODEL, "error", &e);
            return None;
        }
    };
    if response.status() == 404 {
        let text = "This relay runs no swarm model (it serves no base checkpoint).";
        page.dom.set_state(id::SWARM_MODEL, "none", text);
        return None;
    }
    let info = match crate::http::response_text(&response, "/api/model").await.and_then(|text| {
        serde_json::from_str::<tabswarm_protocol::api::ModelInfo>(&text).map_err(|e| format!("/api/model: {e}"))
    }) {
        Ok(info) => info,
        Err(e) => {
            page.dom.set_state(id::SWARM_MODEL, "error", &e);
            return None;
        }
    };
    page.dom.set_state(id::SWARM_MODEL, "ready", &crate::messages::swarm_model_line(&info));
    page.dom.set_data(id::SWARM_MODEL, &[(data::VERSION, &info.number.to_string()), (data::SHA256, &info.hash)]);
    if let Some(link) = page.dom.element(id::SWARM_DOWNLOAD) {
        let short = info.hash.get(..12).unwrap_or(&info.hash);
        let _ = link.set_attribute("href", &info.url);
        let _ = link.set_attribute("download", &format!("tabswarm-swarm-v{}-{short}.tswm", info.number));
        let _ = link.remove_attribute("hidden");
    }
    Some(info)
}

/// Joins the swarm from the page (browsers offer WebRTC to pages, not to workers): asks the
/// relay for its bootstrap list, runs the libp2p node, shows its state, hands received rollouts
/// to the worker and publishes the worker's.
async fn join_swarm(window: web_sys::Window, page: Rc<Page>) {
    page.dom.set_state(id::NET, "connecting", "Asking the relay how to join the swarm…");
    let bootstrap: Bootstrap = match fetch_text(&window, "/api/bootstrap").await.and_then(|text| {
        serde_json::from_str(&text).map_err(|e| format!("the relay's bootstrap list is unreadable ({e})"))
    }) {
        Ok(bootstrap) => bootstrap,
        Err(e) => {
            page.dom.set_state(
                id::NET,
                "offline",
                &format!("Not connected to the swarm: {e}. This tab learns on its own."),
            );
            page.dom.set_state(id::BINDING, "offline", "Without the swarm there is nothing to bind or credit.");
            return;
        }
    };
    // The tab's peer key: the one kept in this browser, so a binding signed earlier still holds.
    let store = KeyStore::open(&window).await;
    let (key, _new) = store.peer_key().await;
    let addrs = bootstrap.addrs.iter().chain(bootstrap.relays.iter().flat_map(|r| r.addrs.iter()));
    let addrs: Vec<libp2p::Multiaddr> = addrs.filter_map(|a| a.parse().ok()).collect();
    let node = match tabswarm_net::web::node(key.clone(), addrs, "browser") {
        // Until the tab is bound to a wallet, it shares only where the relay takes unbound
        // peers' rollouts.
        Ok(node) => node.share_unbound(bootstrap.accepts_unbound),
        Err(e) => {
            page.dom.set_state(
                id::NET,
                "offline",
                &format!("The swarm node could not start ({e}). This tab learns on its own."),
            );
            return;
        }
    };
    let (mut handle, run) = node.spawn();
    let peer_id = handle.peer_id.to_string();
    page.dom.set_data(id::NET, &[(data::PEER_ID, &peer_id)]);
    *page.peer_id.borrow_mut() = Some(peer_id);
    *page.key.borrow_mut() = Some(key.clone());
    *page.net.borrow_mut() = Some(handle.commands.clone());
    wasm_bindgen_futures::spawn_local(run);
    let identity = Identity::start(
        Rc::clone(&page.dom),
        window.clone(),
        store,
        key,
        handle.commands.clone(),
        bootstrap.accepts_unbound,
    );
    *page.identity.borrow_mut() = Some(identity);
    while let Some(event) = handle.events.next().await {
        match event {
            NodeEvent::State(state) => render_connection(&page, &state),
            NodeEvent::Stats(stats) => render_net_stats(&page, &stats),
            // Handed over as the node verified and scored them: the worker does not score again.
            NodeEvent::Rollouts { groups, .. } => page.send(&WorkerRequest::Received { groups }),
            // A relay made a new version: show it, and move the run onto it if it is newer than
            // what the tab trains on (read from this tab's relay, which names what it serves).
            NodeEvent::ModelVersion(version) => {
                if page.training_version.get().is_some_and(|v| version.number > v) {
                    let (window, page) = (window.clone(), Rc::clone(&page));
                    wasm_bindgen_futures::spawn_local(async move {
                        move_to_newer_version(window, page).await;
                    });
                }
            }
        }
    }
}

fn render_connection(page: &Page, state: &ConnectionState) {
    let (key, text) = describe_connection(state);
    page.dom.set_state(id::NET, key, &text);
    let relay = match state {
        ConnectionState::Connected { relay } => relay.as_str(),
        _ => "",
    };
    page.dom.set_data(id::NET, &[(data::RELAY, relay)]);
}

fn render_net_stats(page: &Page, stats: &NetStats) {
    page.dom.set(id::NET_STATS, &stats.describe());
    page.dom.set_data(
        id::NET_STATS,
        &[
            (data::PEERS, &stats.peers_online.to_string()),
            (data::SENT_TOTAL, &stats.sent_total.to_string()),
            (data::RECEIVED_TOTAL, &stats.received_total.to_string()),
        ],
    );
}

fn render(page: &Page, report: WorkerReport, n: usize) {
    match report {
        WorkerReport::Ready => {
            // The check first: a Train clicked before now waits behind it, as it would have.
            page.ready.set(true);
            page.send(&WorkerRequest::Check(CheckRequest { n, seed: PAGE_SEED }));
            page.worker_ready();
        }
        WorkerReport::Adapter(summary) => {
            page.dom.set(id::ADAPTER, &format!("WebGPU adapter: {}", summary.describe()));
            page.webgpu.set(Some(true));
            show_choice(page, &BackendChoice::recommend(Some(&summary)));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the GPU…"));
        }
        WorkerReport::NoWebGpu { reason } => {
            page.dom.set(id::ADAPTER, &format!("No WebGPU adapter ({reason}). The CPU path will be used: it works, but training will be much slower."));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the CPU…"));
            page.webgpu.set(Some(false));
            page.dom.set_state(id::FUSED, "skipped", "");
            page.dom.enable(id::TRAIN_WEBGPU, false);
            show_choice(page, &BackendChoice::recommend(None));
        }
        WorkerReport::Check(check) => {
            page.status(check.state(), &check.headline());
            page.dom.set(id::DETAIL, &check.detail());
        }
        WorkerReport::Failed { message } => page.status("error", &message),
        WorkerReport::Base { description, sha256, version } => {
            page.training_version.set(version.or(sha256.as_ref().map(|_| 0)));
            page.dom.set_state(id::BASE, if sha256.is_some() { "verified" } else { "none" }, &description);
            let version = version.map(|v| v.to_string()).unwrap_or_default();
            page.dom.set_data(id::BASE, &[(data::SHA256, sha256.as_deref().unwrap_or("")), (data::VERSION, &version)]);
        }
        WorkerReport::Rounds { questions, reason } => {
            page.dom.set_state(id::ROUND_SIZE, "chosen", &reason);
            page.dom.set_data(id::ROUND_SIZE, &[(data::QUESTIONS, &questions.to_string())]);
        }
        WorkerReport::Train(progress) => {
            let state = if progress.done { "done" } else { "running" };
            page.dom.set_state(id::TRAIN_STATUS, state, &progress_line(&progress));
            page.dom.set_data(
                id::TRAIN_STATUS,
                &[
                    (data::ROUND, &progress.round.to_string()),
                    (data::REWARD, &progress.reward.to_string()),
                    (data::FIRST_REWARD, &progress.first_reward.to_string()),
                    (data::POLICY_VERSION, &progress.policy_version.to_string()),
                ],
            );
            page.rewards.borrow_mut().push(progress.reward);
            page.dom.set(id::TRAIN_REWARDS, &reward_line(&page.rewards.borrow()));
            show_families(page, &progress.accuracy);
            if progress.done {
                training_finished(page);
            }
        }
        WorkerReport::Paced { busy_ms, wall_ms } => page.dom.set_data(
            id::TRAIN_STATUS,
            &[(data::BUSY_MS, &format!("{busy_ms:.0}")), (data::WALL_MS, &format!("{wall_ms:.0}"))],
        ),
        WorkerReport::Share { groups } => {
            let sender = page.net.borrow().clone();
            if let Some(mut sender) = sender {
                // Full only if the node is far behind; a round's rollouts are then dropped (counted there).
                let _ = sender.try_send(NodeCommand::Publish(groups));
            }
        }
        WorkerReport::TrainFailed { message } => {
            page.dom.set_state(id::TRAIN_STATUS, "error", &message);
            training_finished(page);
        }
        WorkerReport::ModelSaved(saved) => offer_checkpoint(page, &saved),
        // Signed and sent by `send_update` (it needs the page's `Rc`), before `render`.
        WorkerReport::Update { .. } => {}
        WorkerReport::Fused(report) => {
            page.dom.set_state(id::FUSED, if report.passed() { "ok" } else { "error" }, &report.describe());
            if !report.passed() {
                refuse_webgpu_training(page);
            }
        }
        WorkerReport::FusedFailed { message } => {
            page.dom.set_state(id::FUSED, "error", &message);
            refuse_webgpu_training(page);
        }
        WorkerReport::SaveFailed { message } => {
            page.dom.enable(id::TRAIN_SAVE, true);
            page.dom.set(id::TRAIN_SAVE_STATUS, &message);
        }
        WorkerReport::Answer(tried) => {
            let state = if tried.correct { "right" } else { "wrong" };
            page.dom.set_state(id::TRY_ANSWER, state, &tried.describe());
            page.dom.set_data(
                id::TRY_ANSWER,
                &[
                    (data::ANSWER, &tried.answer),
                    (data::FAMILY, tried.question.family.name()),
                    (data::CORRECT, &tried.correct.to_string()),
                ],
            );
        }
        WorkerReport::AskFailed { message } => page.dom.set_state(id::TRY_ANSWER, "error", &message),
    }
}

/// *Try the model*: a typed question is read by the task suite's rules ([`pose`]) here, so a
/// text that is no question is refused at once with the forms it could take; a question goes
/// to the worker, which answers greedily. *A suite question* fills the box with a generated one.
fn wire_try_the_model(page: &Rc<Page>) {
    let ask = {
        let page = Rc::clone(page);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            event.prevent_default();
            let typed = page.dom.input_value(id::TRY_QUESTION).unwrap_or_default();
            match pose(&typed) {
                Ok(question) => {
                    page.dom.set_state(id::TRY_ANSWER, "asking", &format!("Asking the model: {}", question.prompt));
                    page.send(&WorkerRequest::Ask { question });
                }
                Err(e) => page.dom.set_state(id::TRY_ANSWER, "refused", &format!("{e}.")),
            }
        })
    };
    if let Some(form) = page.dom.element(id::TRY_FORM) {
        let _ = form.add_event_listener_with_callback("submit", ask.as_ref().unchecked_ref());
    }
    ask.forget();
    let example = {
        let page = Rc::clone(page);
        Closure::<dyn FnMut()>::new(move || {
            let draw = |n: usize| (js_sys::Math::random() * n as f64) as usize % n;
            let family = Family::ALL[draw(Family::ALL.len())];
            let level = 1 + draw(3) as u8;
            // Seeds below the held-out ones: questions like those the swarm trains on.
            let seed = draw(1 << 30) as u64;
            if let Ok(question) = generate(family, level, seed) {
                page.dom.set_input_value(id::TRY_QUESTION, &question.prompt);
            }
        })
    };
    if let Some(button) = page.dom.button(id::TRY_EXAMPLE) {
        button.set_onclick(Some(example.as_ref().unchecked_ref()));
    }
    example.forget();
    page.dom.enable(id::TRY_ASK, true);
    page.dom.enable(id::TRY_EXAMPLE, true);
}

/// Says which backend training uses and why, and marks that button as the recommended one; the
/// other stays available, so the contributor can switch.
fn show_choice(page: &Page, choice: &BackendChoice) {
    let (chosen, key) = match choice.backend {
        Backend::WebGpu => (id::TRAIN_WEBGPU, "webgpu"),
        // A tab trains on WebGPU or its wasm CPU backend only.
        Backend::Cpu | Backend::Wgpu => (id::TRAIN_CPU, "cpu"),
    };
    page.dom.set_state(id::BACKEND, key, &choice.reason);
    for (button_id, backend) in [(id::TRAIN_WEBGPU, Backend::WebGpu), (id::TRAIN_CPU, Backend::Cpu)] {
        if let Some(button) = page.dom.button(button_id) {
            let recommended = button_id == chosen;
            let label =
                format!("Train on {}{}", backend_label(backend), if recommended { " (recommended)" } else { "" });
            button.set_text_content(Some(&label));
            let _ = button.class_list().toggle_with_force("primary", recommended);
        }
    }
}

/// `Reward by round (last 40): ▁▃▄▆… 0.412` — a sparkline of the run's rewards.
fn reward_line(rewards: &[f32]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let recent = &rewards[rewards.len().saturating_sub(40)..];
    let top = tabswarm_protocol::tasks::MAX_REWARD;
    let line: String = recent.iter().map(|r| BARS[((r / top).clamp(0.0, 1.0) * 7.0).round() as usize]).collect();
    let last = recent.last().copied().unwrap_or(0.0);
    format!("Reward by round (last {}, scale 0–{top}): {line} {last:.3}", recent.len())
}

/// The accuracy table: one row per family (correct / sampled, accuracy over the last few rounds,
/// the level the curriculum asks it at), cloned from the page's `<template id="family-row">`.
fn show_families(page: &Page, accuracy: &[FamilyAccuracy]) {
    let Some(table) = page.dom.element(id::TRAIN_FAMILIES) else { return };
    let Ok(Some(body)) = table.query_selector("tbody") else { return };
    body.set_text_content(None);
    for a in accuracy {
        let Some(row) = page.dom.clone_template(template::FAMILY_ROW) else { return };
        if let Ok(Some(tr)) = row.query_selector("tr") {
            let _ = tr.set_attribute(data::FAMILY, &a.family.to_string());
            let _ = tr.set_attribute(data::ACCURACY, &a.fraction().to_string());
        }
        for (cell, text) in [
            (".family", a.family.to_string()),
            (".tally", format!("{} / {}", a.correct, a.asked)),
            (".accuracy", format!("{:.0}%", a.fraction() * 100.0)),
            (".level", a.level_label()),
        ] {
            if let Ok(Some(td)) = row.query_selector(cell) {
                td.set_text_content(Some(&text));
            }
        }
        let _ = body.append_child(&row);
    }
    let _ = table.remove_attribute("hidden");
}

/// Turns the checkpoint bytes the worker sent into a download link.
fn offer_checkpoint(page: &Page, saved: &SavedModel) {
    page.dom.enable(id::TRAIN_SAVE, true);
    let Some(bytes) = page.checkpoint.borrow_mut().take() else {
        page.dom.set(id::TRAIN_SAVE_STATUS, "The worker said it saved the model, but no bytes arrived; try again.");
        return;
    };
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let url = web_sys::Blob::new_with_u8_array_sequence_and_options(&js_sys::Array::of1(&bytes), &options)
        .and_then(|blob| web_sys::Url::create_object_url_with_blob(&blob));
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            page.dom.set(id::TRAIN_SAVE_STATUS, &format!("The browser could not hold the model for download: {e:?}"));
            return;
        }
    };
    if let Some(old) = page.checkpoint_url.replace(Some(url.clone())) {
        let _ = web_sys::Url::revoke_object_url(&old);
    }
    page.dom.set(id::TRAIN_SAVE_STATUS, "");
    if let Some(link) = page.dom.element(id::TRAIN_DOWNLOAD) {
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", &saved.file_name);
        let _ = link.set_attribute(data::BYTES, &saved.bytes.to_string());
        let _ = link.set_attribute(data::SHA256, &saved.sha256);
        let _ = link.remove_attribute("hidden");
        link.set_text_content(Some(&saved.link_text()));
    }
}

/// The kernels WebGPU training runs are wrong (or could not be checked) on this GPU: train on the
/// CPU only, and say why.
fn refuse_webgpu_training(page: &Page) {
    page.webgpu.set(Some(false));
    page.dom.enable(id::TRAIN_WEBGPU, false);
    show_choice(page, &BackendChoice::kernels_disagree());
}

fn training_finished(page: &Page) {
    page.training.set(false);
    page.dom.enable(id::TRAIN_SAVE, true);
    page.dom.enable(id::TRAIN_CPU, true);
    page.dom.enable(id::TRAIN_STOP, false);
    page.dom.enable(id::TRAIN_WEBGPU, page.webgpu.get() != Some(false));
}
