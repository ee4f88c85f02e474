//! The Web Worker: every GPU and CPU-heavy job of the tab, so the page never stalls. It answers the
//! page's [`WorkerRequest`]s with [`WorkerReport`]s: the matmul and fused-kernel checks on this
//! GPU, and the training run (`tabswarm_learn::run`) from the relay's verified base checkpoint.
//! Every GPU readback is awaited (`into_data_async`); nothing here blocks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::tensor::Device;
use tabswarm_kernels::GpuContext;
use tabswarm_learn::run::{Backend, RunPlan, TrainingRun};
use tabswarm_learn::sync::SwarmSync;
use tabswarm_net::Inbox;
use tabswarm_protocol::api::ModelInfo;
use tabswarm_protocol::checkpoint::BaseInfo;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::check::run_check;
use crate::fused_check::run_fused_check;
use crate::http::{fetch, response_text};
use crate::messages::{
    AdapterSummary, CheckRequest, Pace, SavedModel, TrainRequest, TriedAnswer, WorkerReport, WorkerRequest, rest_ms,
};
use tabswarm_protocol::tasks::Posed;

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
    inbox: RefCell<Inbox>,
    /// A swarm-model version the page asked the run to move onto.
    adopt: RefCell<Option<(String, u64)>>,
    /// The share of the tab the run may take, and whether it waits ([`Pace`]).
    pace: Cell<Pace>,
    /// Typed questions waiting for the running policy's next pause between rounds.
    asked: RefCell<Vec<Posed>>,
    /// The model the relay serves, loaded on the CPU to answer questions while nothing has been
    /// trained here: its hash (swarm version or base), the run holding it, and its name in words.
    looker: RefCell<Option<(String, TrainingRun, String)>>,
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
                WorkerRequest::Adopt { hash, number } => {
                    *state.adopt.borrow_mut() = Some((hash, number));
                    return;
                }
                WorkerRequest::Pace(pace) => {
                    state.pace.set(pace);
                    return;
                }
                // The running policy answers between two rounds.
                WorkerRequest::Ask { question } if state.training.get() => {
                    state.asked.borrow_mut().push(question);
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
                    WorkerRequest::Ask { question } => handle_ask(&scope, &state, question).await,
                    WorkerRequest::Stop
                    | WorkerRequest::Received { .. }
                    | WorkerRequest::Adopt { .. }
                    | WorkerRequest::Pace(_) => {}
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
        let report = match burn_device(state, Backend::WebGpu).await {
            Ok(device) => match run_fused_check(&device, request.seed).await {
                Ok(report) => WorkerReport::Fused(report),
                Err(e) => WorkerReport::FusedFailed { message: format!("The fused-kernel check failed: {e}") },
            },
            Err(message) => WorkerReport::FusedFailed { message },
        };
        post(scope, &report);
    }
}

async fn burn_device(state: &WorkerState, backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        Backend::Wgpu => Err("a tab trains on WebGPU or its CPU, not on a native adapter".into()),
        Backend::WebGpu => {
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
    // A newcomer starts from the swarm model's latest version, not the base.
    let swarm_model = fetch_model_info(scope).await?;
    let peer = plan.peer.clone();
    if let Some(info) = swarm_model.as_ref().filter(|info| info.number > 0) {
        let bytes = fetch_bytes(scope, &info.url).await?;
        tabswarm_protocol::checkpoint::verify(&bytes)
            .map_err(|e| format!("The swarm model's checkpoint from the relay was refused: {e}"))?;
        let run = TrainingRun::from_checkpoint(&bytes, &device, backend, plan.clone())
            .map_err(|e| format!("The swarm model's checkpoint cannot be used: {e}"))?;
        let sync = SwarmSync::new(&run, &info.hash, info.number, info.sync_every)
            .await
            .map_err(|e| format!("The swarm model from the relay was refused: {e}"))?;
        post(
            scope,
            &WorkerReport::Base {
                description: started_from(info),
                sha256: Some(info.hash.clone()),
                version: Some(info.number),
            },
        );
        return train_rounds(scope, state, run, sharing, peer.map(|p| (p, sync))).await;
    }
    let run = match fetch_base(scope).await? {
        Some((info, bytes)) => {
            let run = TrainingRun::from_checkpoint(&bytes, &device, backend, plan)
                .map_err(|e| format!("The relay's base checkpoint cannot be used: {e}"))?;
            let short = info.sha256.get(..12).unwrap_or(&info.sha256);
            let description = format!(
                "Learning from the swarm's base checkpoint: step {}, {} KB, sha256 {short}… — verified in this tab.",
                info.step,
                info.bytes.div_ceil(1024)
            );
            post(scope, &WorkerReport::Base { description, sha256: Some(info.sha256), version: None });
            run
        }
        None => {
            let description = "This relay serves no base checkpoint, so the tab learns from an untrained model, \
                which rarely earns a reward at first. (Relay operators: --base-checkpoint.)"
                .to_owned();
            post(scope, &WorkerReport::Base { description, sha256: None, version: None });
            TrainingRun::fresh(&device, backend, model, plan).map_err(|e| e.to_string())?
        }
    };
    // From the base, which is the swarm model's version 0 when the relay runs one.
    let sync = match (&swarm_model, peer) {
        (Some(info), Some(peer)) => {
            SwarmSync::new(&run, &info.hash, info.number, info.sync_every).await.ok().map(|sync| (peer, sync))
        }
        _ => None,
    };
    train_rounds(scope, state, run, sharing, sync).await
}

fn started_from(info: &ModelInfo) -> String {
    let short = info.hash.get(..12).unwrap_or(&info.hash);
    format!(
        "Learning from the swarm model, version {} ({short}…, {} KB, made from {} updates) — its parameters \
         verified against the version's hash in this tab.",
        info.number,
        info.bytes.div_ceil(1024),
        info.updates
    )
}

/// The rounds of a run; with `sync` (the tab's peer id and its place in the swarm model), an
/// update for the page to sign every `sync_every` rounds, and a move onto each version the page
/// names.
async fn train_rounds(
    scope: &DedicatedWorkerGlobalScope,
    state: &WorkerState,
    mut run: TrainingRun,
    sharing: bool,
    mut sync: Option<(String, SwarmSync)>,
) -> Result<(), String> {
    let now = clock(scope);
    // How big a round this device gets, measured before the first one (on WebGPU) and shown.
    let size = run.size_rounds(&now).await.map_err(|e| format!("Sizing the rounds to this device failed: {e}"))?;
    post(scope, &WorkerReport::Rounds { questions: size.questions as u32, reason: size.reason });
    let (run_started, mut busy_ms) = (now(), 0.0);
    while !run.is_done() {
        let started = now();
        let received = state.inbox.borrow_mut().take();
        let round = run.step(&now, received).await.map_err(|e| format!("Learning failed: {e}"))?;
        let mut progress = round.progress;
        let stopping = state.stop.get();
        progress.done |= stopping;
        if sharing {
            post(scope, &WorkerReport::Share { groups: round.share });
        }
        let finished = progress.round;
        post(scope, &WorkerReport::Train(progress));
        answer_asked(scope, state, &run, &format!("the policy this tab trains, after round {finished}")).await;
        if stopping {
            break;
        }
        if let Some((peer, sync)) = sync.as_mut() {
            if sync.round_done() {
                let update =
                    sync.update(&run, peer).await.map_err(|e| format!("The swarm-model update failed: {e}"))?;
                let encoded = update.encode();
                let array = js_sys::Uint8Array::from(encoded.as_slice());
                scope
                    .post_message_with_transfer(&array, &js_sys::Array::of1(&array.buffer()))
                    .map_err(|e| format!("cannot hand the update to the page: {e:?}"))?;
                post(
                    scope,
                    &WorkerReport::Update { version: sync.version.clone(), number: sync.number, bytes: encoded.len() },
                );
            }
            let asked = state.adopt.borrow_mut().take();
            if let Some((hash, number)) = asked.filter(|(_, number)| *number > sync.number) {
                let url = format!("/api/checkpoint/{hash}");
                let bytes = fetch_bytes(scope, &url).await?;
                let config = run.config().clone();
                match sync.adopt(&mut run, &config, &bytes, &hash, number).await {
                    Ok(()) => post(
                        scope,
                        &WorkerReport::Base {
                            description: format!(
                                "Training on swarm model version {number} ({}…) — moved onto it from the relay, its \
                             parameters verified against the version's hash in this tab.",
                                hash.get(..12).unwrap_or(&hash)
                            ),
                            sha256: Some(hash),
                            version: Some(number),
                        },
                    ),
                    Err(e) => {
                        web_sys::console::warn_1(&format!("tabswarm worker: version {number} refused: {e}").into())
                    }
                }
            }
        }
        let spent = now() - started;
        busy_ms += spent;
        if !run.is_done() {
            rest(scope, state, spent).await;
        }
        post(scope, &WorkerReport::Paced { busy_ms, wall_ms: now() - run_started });
        yield_to_event_loop(scope).await; // lets a Stop message in
    }
    answer_asked(scope, state, &run, "the model this tab trained").await;
    *state.last_run.borrow_mut() = Some(run);
    Ok(())
}

/// Answers the questions asked while the run computed, with its policy as it is now.
async fn answer_asked(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, run: &TrainingRun, model: &str) {
    let asked: Vec<Posed> = state.asked.borrow_mut().drain(..).collect();
    for question in asked {
        answer_with(scope, run, question, model).await;
    }
}

async fn answer_with(scope: &DedicatedWorkerGlobalScope, run: &TrainingRun, question: Posed, model: &str) {
    let report = match run.answer(&question).await {
        Ok(answer) => WorkerReport::Answer(TriedAnswer::new(question, answer, model.to_owned())),
        Err(e) => WorkerReport::AskFailed { message: format!("The model could not answer {}: {e}", question.prompt) },
    };
    post(scope, &report);
}

/// Answers a typed question while no run computes: with the model this tab trained last, else
/// with the model the relay serves now (its latest swarm version, or its base), fetched once per
/// version and checked like a run's.
async fn handle_ask(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, question: Posed) {
    // Taken out while it answers (a borrow must not live across an await) and put back after.
    let trained = state.last_run.borrow_mut().take();
    if let Some(run) = trained {
        answer_with(scope, &run, question, "the model this tab trained").await;
        *state.last_run.borrow_mut() = Some(run);
        return;
    }
    match served_model(scope, state).await {
        Ok(()) => {
            let looker = state.looker.borrow_mut().take();
            if let Some((hash, run, name)) = looker {
                answer_with(scope, &run, question, &name).await;
                *state.looker.borrow_mut() = Some((hash, run, name));
            }
        }
        Err(message) => post(scope, &WorkerReport::AskFailed { message }),
    }
}

/// Loads the model the relay serves into `state.looker`, unless it holds that version already.
async fn served_model(scope: &DedicatedWorkerGlobalScope, state: &WorkerState) -> Result<(), String> {
    let device = Device::flex();
    let plan = RunPlan::solo(0, 0);
    let info = fetch_model_info(scope).await?;
    let held = state.looker.borrow().as_ref().map(|(hash, ..)| hash.clone());
    if let Some(info) = info.as_ref().filter(|info| info.number > 0) {
        if held.as_deref() == Some(info.hash.as_str()) {
            return Ok(());
        }
        let bytes = fetch_bytes(scope, &info.url).await?;
        tabswarm_protocol::checkpoint::verify(&bytes)
            .map_err(|e| format!("The swarm model's checkpoint from the relay was refused: {e}"))?;
        let run = TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, plan)
            .map_err(|e| format!("The swarm model's checkpoint cannot be used: {e}"))?;
        let name = format!("the swarm model, version {}", info.number);
        *state.looker.borrow_mut() = Some((info.hash.clone(), run, name));
        return Ok(());
    }
    // The base does not change under a relay that runs no swarm model.
    if held.is_some() && info.as_ref().is_none_or(|info| held.as_deref() == Some(info.hash.as_str())) {
        return Ok(());
    }
    let Some((base, bytes)) = fetch_base(scope).await? else {
        return Err("This relay serves no model to ask yet; contribute to train one in this tab.".into());
    };
    let run = TrainingRun::from_checkpoint(&bytes, &device, Backend::Cpu, plan)
        .map_err(|e| format!("The relay's base checkpoint cannot be used: {e}"))?;
    // The base is the swarm model's version 0: held under the hash /api/model names for it.
    let hash = info.map_or(base.sha256, |info| info.hash);
    *state.looker.borrow_mut() = Some((hash, run, "the base model the relay serves".to_owned()));
    Ok(())
}

/// The relay's swarm model (`/api/model`); `None` when it runs none (404).
async fn fetch_model_info(scope: &DedicatedWorkerGlobalScope) -> Result<Option<ModelInfo>, String> {
    let url = "/api/model";
    let response = fetch(scope.fetch_with_str(url), url).await?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!("The relay answered HTTP {} for its swarm model.", response.status()));
    }
    let text = response_text(&response, "the swarm model's description").await?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("The relay's swarm model description is unreadable ({e})."))
}

async fn fetch_bytes(scope: &DedicatedWorkerGlobalScope, url: &str) -> Result<Vec<u8>, String> {
    let response = fetch(scope.fetch_with_str(url), url).await?;
    if !response.ok() {
        return Err(format!("The relay answered HTTP {} for {url}.", response.status()));
    }
    let buffer = wasm_bindgen_futures::JsFuture::from(response.array_buffer().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("downloading {url} failed: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
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
    let bytes = fetch_bytes(scope, &info.url).await?;
    info.check(&bytes).map_err(|e| format!("The base checkpoint from the relay was refused: {e}"))?;
    Ok(Some((info, bytes)))
}

/// Sends the last run's model to the page: the bytes (transferred, not copied), then their summary.
async fn handle_save(scope: &DedicatedWorkerGlobalScope, state: &WorkerState) {
    // The last round's report reaches the page a moment before the run has wound up (its last
    // update, a rest): a click on Save right after it waits for that instead of failing.
    for _ in 0..50 {
        if !state.training.get() {
            break;
        }
        sleep_ms(scope, 100.0).await;
    }
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

/// Holds the run to its [`Pace`] after a round that took `spent_ms`: rests so that computing takes
/// the budget's share of wall time, then waits while paused. Wakes every 100 ms to see a Stop, a
/// new budget or a resume.
async fn rest(scope: &DedicatedWorkerGlobalScope, state: &WorkerState, spent_ms: f64) {
    const TICK_MS: f64 = 100.0;
    let mut left = rest_ms(spent_ms, state.pace.get().budget);
    while left > 0.0 && !state.stop.get() && state.pace.get().budget < 100 {
        let tick = left.min(TICK_MS);
        sleep_ms(scope, tick).await;
        left -= tick;
    }
    while state.pace.get().paused && !state.stop.get() {
        sleep_ms(scope, TICK_MS).await;
    }
}

async fn sleep_ms(scope: &DedicatedWorkerGlobalScope, ms: f64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms.ceil() as i32);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Resolves on the next macrotask, so messages queued for the worker are handled between steps.
async fn yield_to_event_loop(scope: &DedicatedWorkerGlobalScope) {
    sleep_ms(scope, 0.0).await;
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
