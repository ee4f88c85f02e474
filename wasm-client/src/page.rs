//! Browser glue: the page controller and the worker loop. Everything here is thin; the logic is in
//! [`crate::check`], [`crate::training`] and [`crate::report`].

mod identity;
mod keystore;
mod wallet;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::tensor::Device;
use tabswarm_kernels::GpuContext;
use wasm_bindgen::prelude::*;
use web_sys::{
    DedicatedWorkerGlobalScope, Document, HtmlButtonElement, MessageEvent, Worker, WorkerOptions, WorkerType,
};

use crate::check::run_check;
use crate::fused_check::run_fused_check;
use crate::net::{self, ConnectionState, NetStats, NodeCommand, NodeEvent};
use crate::report::{
    AdapterSummary, BackendChoice, CheckRequest, ModelSize, SavedModel, TrainBackend, TrainRequest, WorkerReport,
    WorkerRequest, size_from_query, train_options_from_query,
};
use crate::training::{RunPlan, TrainingRun};
use futures::StreamExt;
use tabswarm_protocol::api::Bootstrap;
use tabswarm_protocol::checkpoint::BaseInfo;

/// Seed of the page's random matrices and model (any fixed value: results are checked, not compared).
const PAGE_SEED: u64 = 0x7ab5_3a2d;

#[wasm_bindgen(start)]
fn init() {
    console_error_panic_hook::set_once();
}

// ---------------------------------------------------------------------------------------------
// Page (main thread)
// ---------------------------------------------------------------------------------------------

struct Page {
    document: Document,
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
}

impl Page {
    fn set(&self, id: &str, text: &str) {
        if let Some(el) = self.document.get_element_by_id(id) {
            el.set_text_content(Some(text));
        }
    }

    /// Sets an element's text and its `data-state`, which styles and tests read.
    fn set_state(&self, id: &str, state: &str, text: &str) {
        if let Some(el) = self.document.get_element_by_id(id) {
            el.set_text_content(Some(text));
            let _ = el.set_attribute("data-state", state);
        }
    }

    fn status(&self, state: &str, text: &str) {
        self.set_state("status", state, text);
    }

    fn button(&self, id: &str) -> Option<HtmlButtonElement> {
        self.document.get_element_by_id(id).and_then(|el| el.dyn_into().ok())
    }

    fn enable(&self, id: &str, enabled: bool) {
        if let Some(button) = self.button(id) {
            button.set_disabled(!enabled);
        }
    }

    fn send(&self, request: &WorkerRequest) {
        let sent = serde_json::to_string(request)
            .map_err(|e| e.to_string())
            .and_then(|json| self.worker.post_message(&json.into()).map_err(|e| format!("{e:?}")));
        if let Err(e) = sent {
            self.status("error", &format!("Cannot talk to the worker: {e}"));
        }
    }
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
        document,
        worker,
        train_size,
        train_rounds,
        webgpu: Cell::new(None),
        checkpoint: RefCell::new(None),
        checkpoint_url: RefCell::new(None),
        rewards: RefCell::new(Vec::new()),
        net: RefCell::new(None),
        peer_id: RefCell::new(None),
    });

    let has_webgpu = js_sys::Reflect::get(&window.navigator(), &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined());
    if has_webgpu {
        page.set("adapter", "WebGPU is available; asking for an adapter…");
    } else {
        page.set("adapter", "This browser does not offer WebGPU (navigator.gpu is missing). Tabswarm will use the CPU path instead, which is much slower. Chrome/Edge 113+ or a browser with WebGPU enabled gives the full speed.");
        page.enable("train-webgpu", false);
    }
    if let Some(warning) = warning {
        page.set("note", &warning);
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
            page.set_state("train-status", "error", &message);
        })
    };
    page.worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onerror.forget();

    let save_click = {
        let page = Rc::clone(&page);
        Closure::<dyn FnMut()>::new(move || {
            page.enable("train-save", false);
            page.set("train-save-status", "Saving the model…");
            page.send(&WorkerRequest::SaveModel);
        })
    };
    if let Some(button) = page.button("train-save") {
        button.set_onclick(Some(save_click.as_ref().unchecked_ref()));
    }
    save_click.forget();

    for (id, backend) in
        [("train-webgpu", Some(TrainBackend::WebGpu)), ("train-cpu", Some(TrainBackend::Cpu)), ("train-stop", None)]
    {
        let page_for_click = Rc::clone(&page);
        let onclick = Closure::<dyn FnMut()>::new(move || {
            let page = &page_for_click;
            match backend {
                Some(backend) => {
                    page.enable("train-webgpu", false);
                    page.enable("train-cpu", false);
                    page.enable("train-stop", true);
                    page.enable("train-save", false);
                    page.set_state("train-status", "running", &format!("Starting to learn on {}…", backend.label()));
                    page.rewards.borrow_mut().clear();
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
        if let Some(button) = page.button(id) {
            button.set_onclick(Some(onclick.as_ref().unchecked_ref()));
        }
        onclick.forget();
    }
    wasm_bindgen_futures::spawn_local(join_swarm(window, Rc::clone(&page)));
    Ok(())
}

/// Joins the swarm from the page (browsers offer WebRTC to pages, not to workers): asks the
/// relay for its bootstrap list, runs the libp2p node, shows its state, hands received rollouts
/// to the worker and publishes the worker's.
async fn join_swarm(window: web_sys::Window, page: Rc<Page>) {
    page.set_state("net", "connecting", "Asking the relay how to join the swarm…");
    let bootstrap: Bootstrap = match fetch_text(&window, "/api/bootstrap").await.and_then(|text| {
        serde_json::from_str(&text).map_err(|e| format!("the relay's bootstrap list is unreadable ({e})"))
    }) {
        Ok(bootstrap) => bootstrap,
        Err(e) => {
            page.set_state("net", "offline", &format!("Not connected to the swarm: {e}. This tab learns on its own."));
            page.set_state("binding", "offline", "Without the swarm there is nothing to bind or credit.");
            return;
        }
    };
    // The tab's peer key: the one kept in this browser, so a binding signed earlier still holds.
    let store = keystore::KeyStore::open(&window).await;
    let (key, _new) = store.peer_key().await;
    let addrs = bootstrap.addrs.iter().chain(bootstrap.relays.iter().flat_map(|r| r.addrs.iter()));
    let addrs: Vec<libp2p::Multiaddr> = addrs.filter_map(|a| a.parse().ok()).collect();
    let node = match net::web::node(key.clone(), addrs, "browser") {
        // Until the tab is bound to a wallet, it shares only where the relay takes unbound
        // peers' rollouts.
        Ok(node) => node.share_unbound(bootstrap.accepts_unbound),
        Err(e) => {
            page.set_state(
                "net",
                "offline",
                &format!("The swarm node could not start ({e}). This tab learns on its own."),
            );
            return;
        }
    };
    let (mut handle, run) = node.spawn();
    let peer_id = handle.peer_id.to_string();
    if let Some(el) = page.document.get_element_by_id("net") {
        let _ = el.set_attribute("data-peer-id", &peer_id);
    }
    *page.peer_id.borrow_mut() = Some(peer_id);
    *page.net.borrow_mut() = Some(handle.commands.clone());
    wasm_bindgen_futures::spawn_local(run);
    identity::Identity::start(
        Rc::clone(&page),
        window.clone(),
        store,
        key,
        handle.commands.clone(),
        bootstrap.accepts_unbound,
    );
    while let Some(event) = handle.events.next().await {
        match event {
            NodeEvent::State(state) => render_connection(&page, &state),
            NodeEvent::Stats(stats) => render_net_stats(&page, &stats),
            NodeEvent::Rollouts { groups, .. } => {
                page.send(&WorkerRequest::Received { groups: groups.into_iter().map(|g| g.group).collect() });
            }
        }
    }
}

async fn fetch_text(window: &web_sys::Window, url: &str) -> Result<String, String> {
    let response = fetch(window.fetch_with_str(url), url).await?;
    if !response.ok() {
        return Err(format!("the relay answered HTTP {} for {url}", response.status()));
    }
    response_text(&response, url).await
}

/// Awaits a `fetch()` promise (the page's or the worker's) for `url`.
async fn fetch(promise: js_sys::Promise, url: &str) -> Result<web_sys::Response, String> {
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| format!("cannot reach the relay for {url}: {e:?}"))?
        .dyn_into()
        .map_err(|_| format!("the browser returned no response for {url}"))
}

/// The body of `response` as text; `what` names it in the error.
async fn response_text(response: &web_sys::Response, what: &str) -> Result<String, String> {
    let text = wasm_bindgen_futures::JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("reading {what} failed: {e:?}"))?;
    Ok(text.as_string().unwrap_or_default())
}

fn render_connection(page: &Page, state: &ConnectionState) {
    let (key, text) = net::describe_connection(state);
    page.set_state("net", key, &text);
    if let Some(el) = page.document.get_element_by_id("net") {
        let relay = match state {
            ConnectionState::Connected { relay } => relay.as_str(),
            _ => "",
        };
        let _ = el.set_attribute("data-relay", relay);
    }
}

fn render_net_stats(page: &Page, stats: &NetStats) {
    page.set("net-stats", &stats.describe());
    if let Some(el) = page.document.get_element_by_id("net-stats") {
        let _ = el.set_attribute("data-peers", &stats.peers_online.to_string());
        let _ = el.set_attribute("data-sent-total", &stats.sent_total.to_string());
        let _ = el.set_attribute("data-received-total", &stats.received_total.to_string());
    }
}

fn render(page: &Page, report: WorkerReport, n: usize) {
    match report {
        WorkerReport::Ready => page.send(&WorkerRequest::Check(CheckRequest { n, seed: PAGE_SEED })),
        WorkerReport::Adapter(summary) => {
            page.set("adapter", &format!("WebGPU adapter: {}", summary.describe()));
            page.webgpu.set(Some(true));
            show_choice(page, &BackendChoice::recommend(Some(&summary)));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the GPU…"));
        }
        WorkerReport::NoWebGpu { reason } => {
            page.set("adapter", &format!("No WebGPU adapter ({reason}). The CPU path will be used: it works, but training will be much slower."));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the CPU…"));
            page.webgpu.set(Some(false));
            page.set_state("fused", "skipped", "");
            page.enable("train-webgpu", false);
            show_choice(page, &BackendChoice::recommend(None));
        }
        WorkerReport::Check(check) => {
            page.status(check.state(), &check.headline());
            page.set("detail", &check.detail());
        }
        WorkerReport::Failed { message } => page.status("error", &message),
        WorkerReport::Base { description, sha256 } => {
            page.set_state("base", if sha256.is_some() { "verified" } else { "none" }, &description);
            if let Some(el) = page.document.get_element_by_id("base") {
                let _ = el.set_attribute("data-sha256", sha256.as_deref().unwrap_or(""));
            }
        }
        WorkerReport::Train(progress) => {
            let state = if progress.done { "done" } else { "running" };
            page.set_state("train-status", state, &progress.describe());
            if let Some(el) = page.document.get_element_by_id("train-status") {
                let _ = el.set_attribute("data-round", &progress.round.to_string());
                let _ = el.set_attribute("data-reward", &progress.reward.to_string());
                let _ = el.set_attribute("data-first-reward", &progress.first_reward.to_string());
                let _ = el.set_attribute("data-policy-version", &progress.policy_version.to_string());
            }
            page.rewards.borrow_mut().push(progress.reward);
            page.set("train-rewards", &reward_line(&page.rewards.borrow()));
            if let Some(table) = page.document.get_element_by_id("train-families") {
                table.set_inner_html(&family_rows(&progress.accuracy));
            }
            if progress.done {
                training_finished(page);
            }
        }
        WorkerReport::Share { groups } => {
            let sender = page.net.borrow().clone();
            if let Some(mut sender) = sender {
                // Full only if the node is far behind; a round's rollouts are then dropped (counted there).
                let _ = sender.try_send(NodeCommand::Publish(groups));
            }
        }
        WorkerReport::TrainFailed { message } => {
            page.set_state("train-status", "error", &message);
            training_finished(page);
        }
        WorkerReport::ModelSaved(saved) => offer_checkpoint(page, &saved),
        WorkerReport::Fused(report) => {
            page.set_state("fused", if report.passed() { "ok" } else { "error" }, &report.describe());
            if !report.passed() {
                refuse_webgpu_training(page);
            }
        }
        WorkerReport::FusedFailed { message } => {
            page.set_state("fused", "error", &message);
            refuse_webgpu_training(page);
        }
        WorkerReport::SaveFailed { message } => {
            page.enable("train-save", true);
            page.set("train-save-status", &message);
        }
    }
}

/// Says which backend training uses and why, and marks that button as the recommended one; the
/// other stays available, so the contributor can switch.
fn show_choice(page: &Page, choice: &BackendChoice) {
    let (id, key) = match choice.backend {
        TrainBackend::WebGpu => ("train-webgpu", "webgpu"),
        TrainBackend::Cpu => ("train-cpu", "cpu"),
    };
    page.set_state("backend", key, &choice.reason);
    for (button_id, backend) in [("train-webgpu", TrainBackend::WebGpu), ("train-cpu", TrainBackend::Cpu)] {
        if let Some(button) = page.button(button_id) {
            let recommended = button_id == id;
            let label = format!("Train on {}{}", backend.label(), if recommended { " (recommended)" } else { "" });
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

/// Table rows: family, correct / sampled, accuracy — over the last few rounds.
fn family_rows(accuracy: &[crate::report::FamilyAccuracy]) -> String {
    let mut html =
        String::from("<tr><th>task family</th><th>correct / sampled (last 10 rounds)</th><th>accuracy</th></tr>");
    for a in accuracy {
        html.push_str(&format!(
            "<tr data-family=\"{f}\" data-accuracy=\"{acc}\"><td>{f}</td><td>{c} / {n}</td><td>{pct:.0}%</td></tr>",
            f = a.family,
            acc = a.fraction(),
            c = a.correct,
            n = a.asked,
            pct = a.fraction() * 100.0
        ));
    }
    html
}

/// Turns the checkpoint bytes the worker sent into a download link.
fn offer_checkpoint(page: &Page, saved: &SavedModel) {
    page.enable("train-save", true);
    let Some(bytes) = page.checkpoint.borrow_mut().take() else {
        page.set("train-save-status", "The worker said it saved the model, but no bytes arrived; try again.");
        return;
    };
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let url = web_sys::Blob::new_with_u8_array_sequence_and_options(&js_sys::Array::of1(&bytes), &options)
        .and_then(|blob| web_sys::Url::create_object_url_with_blob(&blob));
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            page.set("train-save-status", &format!("The browser could not hold the model for download: {e:?}"));
            return;
        }
    };
    if let Some(old) = page.checkpoint_url.replace(Some(url.clone())) {
        let _ = web_sys::Url::revoke_object_url(&old);
    }
    page.set("train-save-status", "");
    if let Some(link) = page.document.get_element_by_id("train-download") {
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", &saved.file_name);
        let _ = link.set_attribute("data-bytes", &saved.bytes.to_string());
        let _ = link.set_attribute("data-sha256", &saved.sha256);
        let _ = link.remove_attribute("hidden");
        link.set_text_content(Some(&saved.link_text()));
    }
}

/// The kernels WebGPU training runs are wrong (or could not be checked) on this GPU: train on the
/// CPU only, and say why.
fn refuse_webgpu_training(page: &Page) {
    page.webgpu.set(Some(false));
    page.enable("train-webgpu", false);
    show_choice(page, &BackendChoice::kernels_disagree());
}

fn training_finished(page: &Page) {
    page.enable("train-save", true);
    page.enable("train-cpu", true);
    page.enable("train-stop", false);
    page.enable("train-webgpu", page.webgpu.get() != Some(false));
}

// ---------------------------------------------------------------------------------------------
// Worker
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct WorkerState {
    /// Our own wgpu device for the kernels (the matmul check).
    kernels_gpu: RefCell<Option<Rc<GpuContext>>>,
    /// burn's WebGPU device: its runtime can be initialised only once per worker.
    burn_webgpu: RefCell<Option<Device>>,
    training: Cell<bool>,
    stop: Cell<bool>,
    /// The last training run, kept after it ends so its model can be saved.
    last_run: RefCell<Option<TrainingRun>>,
    /// Rollout groups from other peers, waiting for the next round.
    inbox: RefCell<net::Inbox>,
}

/// Runs inside the Web Worker: answers [`WorkerRequest`]s with [`WorkerReport`]s.
#[wasm_bindgen]
pub fn start_worker() -> Result<(), JsError> {
    let scope: DedicatedWorkerGlobalScope =
        js_sys::global().dyn_into().map_err(|_| JsError::new("start_worker must run inside a dedicated Web Worker"))?;
    let state = Rc::new(WorkerState::default());
    let onmessage = {
        let scope = scope.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let text = event.data().as_string().unwrap_or_default();
            let request = match serde_json::from_str::<WorkerRequest>(&text) {
                Ok(request) => request,
                Err(e) => {
                    post(&scope, &WorkerReport::Failed { message: format!("the worker got a malformed request: {e}") });
                    return;
                }
            };
            let request = match request {
                WorkerRequest::Stop => {
                    state.stop.set(true);
                    return;
                }
                WorkerRequest::Received { groups } => {
                    state.inbox.borrow_mut().push(groups);
                    return;
                }
                request => request,
            };
            let (scope, state) = (scope.clone(), Rc::clone(&state));
            wasm_bindgen_futures::spawn_local(async move {
                match request {
                    WorkerRequest::Check(check) => handle_check(&scope, &state, check).await,
                    WorkerRequest::Train(train) => handle_train(&scope, &state, train).await,
                    WorkerRequest::SaveModel => handle_save(&scope, &state).await,
                    WorkerRequest::Stop | WorkerRequest::Received { .. } => {}
                }
            });
        })
    };
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(&scope, &WorkerReport::Ready);
    Ok(())
}

fn clock(scope: &DedicatedWorkerGlobalScope) -> impl Fn() -> f64 + use<> {
    let performance = scope.performance();
    move || performance.as_ref().map_or(0.0, |p| p.now())
}

async fn handle_check(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, request: CheckRequest) {
    let existing = state.kernels_gpu.borrow().clone();
    let ctx = match existing {
        Some(ctx) => Some(ctx),
        None => match GpuContext::new().await {
            Ok(ctx) => {
                post(scope, &WorkerReport::Adapter(AdapterSummary::from_info(ctx.adapter_info())));
                let ctx = Rc::new(ctx);
                *state.kernels_gpu.borrow_mut() = Some(Rc::clone(&ctx));
                Some(ctx)
            }
            Err(e) => {
                let exposed =
                    js_sys::Reflect::get(&scope.navigator(), &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined());
                let reason = if exposed {
                    web_sys::console::warn_1(&format!("tabswarm worker: no WebGPU adapter: {e}").into());
                    "the browser offered no WebGPU adapter; WebGPU may be disabled, or this GPU blocklisted".to_owned()
                } else {
                    "this browser does not expose WebGPU to workers (navigator.gpu is missing)".to_owned()
                };
                post(scope, &WorkerReport::NoWebGpu { reason });
                None
            }
        },
    };
    let report = match run_check(&request, ctx.as_deref(), &clock(scope)).await {
        Ok(check) => WorkerReport::Check(check),
        Err(e) => WorkerReport::Failed { message: format!("The matmul check failed: {e}") },
    };
    post(scope, &report);
    if ctx.is_some() {
        // The kernels training uses on WebGPU, checked on this GPU against their references.
        let report = match burn_device(state, TrainBackend::WebGpu).await {
            Ok(device) => match run_fused_check(&device, request.seed).await {
                Ok(report) => WorkerReport::Fused(report),
                Err(e) => WorkerReport::FusedFailed { message: format!("The fused-kernel check failed: {e}") },
            },
            Err(message) => WorkerReport::FusedFailed { message },
        };
        post(scope, &report);
    }
}

async fn burn_device(state: &WorkerState, backend: TrainBackend) -> Result<Device, String> {
    match backend {
        TrainBackend::Cpu => Ok(Device::flex()),
        TrainBackend::WebGpu => {
            if let Some(device) = state.burn_webgpu.borrow().clone() {
                return Ok(device);
            }
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| format!("WebGPU could not be set up for training ({e:?}); use the CPU instead"))?;
            *state.burn_webgpu.borrow_mut() = Some(device.clone());
            Ok(device)
        }
    }
}

async fn handle_train(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, request: TrainRequest) {
    if state.training.replace(true) {
        post(scope, &WorkerReport::TrainFailed { message: "Training is already running.".into() });
        return;
    }
    state.stop.set(false);
    let result = train(scope, state, request).await;
    if let Err(message) = result {
        post(scope, &WorkerReport::TrainFailed { message });
    }
    state.training.set(false);
}

async fn train(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, request: TrainRequest) -> Result<(), String> {
    let TrainRequest { backend, model, rounds, seed, peer } = request;
    let sharing = peer.is_some();
    let plan = RunPlan { rounds, seed, peer, families: Vec::new() };
    let device = burn_device(state, backend).await?;
    let mut run = match fetch_base(scope).await? {
        Some((info, bytes)) => {
            let run = TrainingRun::from_checkpoint(&bytes, &device, backend, plan)
                .map_err(|e| format!("The relay's base checkpoint cannot be used: {e}"))?;
            let short = info.sha256.get(..12).unwrap_or(&info.sha256);
            let description = format!(
                "Learning from the swarm's base checkpoint: step {}, {} KB, sha256 {short}… — verified in this tab.",
                info.step,
                info.bytes.div_ceil(1024)
            );
            post(scope, &WorkerReport::Base { description, sha256: Some(info.sha256) });
            run
        }
        None => {
            let description = "This relay serves no base checkpoint, so the tab learns from an untrained model, \
                which rarely earns a reward at first. (Relay operators: --base-checkpoint.)"
                .to_owned();
            post(scope, &WorkerReport::Base { description, sha256: None });
            TrainingRun::fresh(&device, backend, model, plan).map_err(|e| e.to_string())?
        }
    };
    let now = clock(scope);
    while !run.is_done() {
        let received = state.inbox.borrow_mut().take();
        let round = run.step(&now, received).await.map_err(|e| format!("Learning failed: {e}"))?;
        let mut progress = round.progress;
        let stopping = state.stop.get();
        progress.done |= stopping;
        if sharing {
            post(scope, &WorkerReport::Share { groups: round.share });
        }
        post(scope, &WorkerReport::Train(progress));
        if stopping {
            break;
        }
        yield_to_event_loop(scope).await; // lets a Stop message in
    }
    *state.last_run.borrow_mut() = Some(run);
    Ok(())
}

/// The relay's base checkpoint, checked against the hash the relay advertises; `None` when the
/// relay serves none (404).
async fn fetch_base(scope: &DedicatedWorkerGlobalScope) -> Result<Option<(BaseInfo, Vec<u8>)>, String> {
    let base_json = "/api/checkpoint/base.json";
    let response = fetch(scope.fetch_with_str(base_json), base_json).await?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!("The relay answered HTTP {} for its base checkpoint.", response.status()));
    }
    let text = response_text(&response, "the base checkpoint description").await?;
    let info: BaseInfo = serde_json::from_str(&text)
        .map_err(|e| format!("The relay's base checkpoint description is unreadable ({e})."))?;
    let response = fetch(scope.fetch_with_str(&info.url), &info.url).await?;
    if !response.ok() {
        return Err(format!("The relay answered HTTP {} for {}.", response.status(), info.url));
    }
    let buffer = wasm_bindgen_futures::JsFuture::from(response.array_buffer().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("downloading the base checkpoint failed: {e:?}"))?;
    let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
    info.check(&bytes).map_err(|e| format!("The base checkpoint from the relay was refused: {e}"))?;
    Ok(Some((info, bytes)))
}

/// Sends the last run's model to the page: the bytes (transferred, not copied), then their summary.
async fn handle_save(scope: &DedicatedWorkerGlobalScope, state: &WorkerState) {
    if state.training.get() {
        post(scope, &WorkerReport::SaveFailed { message: "Stop training before saving the model.".into() });
        return;
    }
    let Some(run) = state.last_run.borrow_mut().take() else {
        post(
            scope,
            &WorkerReport::SaveFailed { message: "There is no trained model to save yet: train first.".into() },
        );
        return;
    };
    let saved = run.checkpoint().await;
    *state.last_run.borrow_mut() = Some(run);
    let result = saved.map_err(|e| e.to_string()).and_then(|bytes| {
        let summary = SavedModel::describe(&bytes).map_err(|e| e.to_string())?;
        let array = js_sys::Uint8Array::from(bytes.as_slice());
        scope
            .post_message_with_transfer(&array, &js_sys::Array::of1(&array.buffer()))
            .map_err(|e| format!("cannot hand the model to the page: {e:?}"))?;
        Ok(summary)
    });
    match result {
        Ok(summary) => post(scope, &WorkerReport::ModelSaved(summary)),
        Err(message) => {
            post(scope, &WorkerReport::SaveFailed { message: format!("Saving the model failed: {message}") })
        }
    }
}

/// Resolves on the next macrotask, so messages queued for the worker are handled between steps.
async fn yield_to_event_loop(scope: &DedicatedWorkerGlobalScope) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn post(scope: &DedicatedWorkerGlobalScope, report: &WorkerReport) {
    match serde_json::to_string(report) {
        Ok(json) => {
            if let Err(e) = scope.post_message(&json.into()) {
                web_sys::console::error_2(&"tabswarm worker: cannot post to the page".into(), &e);
            }
        }
        Err(e) => web_sys::console::error_1(&format!("tabswarm worker: cannot encode a report: {e}").into()),
    }
}
