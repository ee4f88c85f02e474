//! Browser glue: the page controller and the worker loop. Everything here is thin; the logic is in
//! [`crate::check`] and [`crate::report`].

use std::cell::RefCell;
use std::rc::Rc;

use tabswarm_kernels::GpuContext;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, Document, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::check::run_check;
use crate::report::{AdapterSummary, CheckRequest, WorkerReport, size_from_query};

/// Seed of the page's random matrices (any fixed value: the result is checked, not compared).
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
}

impl Page {
    fn set(&self, id: &str, text: &str) {
        if let Some(el) = self.document.get_element_by_id(id) {
            el.set_text_content(Some(text));
        }
    }

    /// Sets the headline and its `data-state` (`pending`, `ok`, `cpu`, `error`), which tests read.
    fn status(&self, state: &str, text: &str) {
        if let Some(el) = self.document.get_element_by_id("status") {
            el.set_text_content(Some(text));
            let _ = el.set_attribute("data-state", state);
        }
    }
}

/// Runs on the page: reports whether this browser has WebGPU, starts the worker and renders what it
/// reports. Never leaves the page blank: every failure becomes a sentence in `#status`.
#[wasm_bindgen]
pub fn start_page() -> Result<(), JsError> {
    let window = web_sys::window().ok_or_else(|| JsError::new("no window: start_page must run on the page"))?;
    let document = window.document().ok_or_else(|| JsError::new("no document"))?;
    let page = Rc::new(Page { document });

    let has_webgpu = js_sys::Reflect::get(&window.navigator(), &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined());
    if has_webgpu {
        page.set("adapter", "WebGPU is available; asking for an adapter…");
    } else {
        page.set("adapter", "This browser does not offer WebGPU (navigator.gpu is missing). Tabswarm will use the CPU path instead, which is much slower. Chrome/Edge 113+ or a browser with WebGPU enabled gives the full speed.");
    }

    let query = window.location().search().unwrap_or_default();
    let (n, warning) = size_from_query(&query);
    if let Some(warning) = warning {
        page.set("note", &warning);
    }
    page.status("pending", &format!("Starting the worker for a {n}×{n} matmul check…"));

    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("./worker.js", &options)
        .map_err(|e| JsError::new(&format!("cannot start the Web Worker: {e:?}")))?;
    let worker = Rc::new(worker);

    let onmessage = {
        let page = Rc::clone(&page);
        let worker = Rc::clone(&worker);
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let text = event.data().as_string().unwrap_or_default();
            match serde_json::from_str::<WorkerReport>(&text) {
                Ok(report) => render(&page, &worker, report, n),
                Err(e) => page.status("error", &format!("The worker sent a message the page cannot read ({e}).")),
            }
        })
    };
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget(); // lives as long as the page

    let onerror = {
        let page = Rc::clone(&page);
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            page.status("error", &format!("The worker failed: {} — reload the page to retry.", event.message()));
        })
    };
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onerror.forget();
    Ok(())
}

fn render(page: &Page, worker: &Worker, report: WorkerReport, n: usize) {
    match report {
        WorkerReport::Ready => {
            let request = CheckRequest { n, seed: PAGE_SEED };
            match serde_json::to_string(&request) {
                Ok(json) => {
                    if let Err(e) = worker.post_message(&json.into()) {
                        page.status("error", &format!("Cannot talk to the worker: {e:?}"));
                    }
                }
                Err(e) => page.status("error", &format!("Cannot encode the request: {e}")),
            }
        }
        WorkerReport::Adapter(summary) => {
            page.set("adapter", &format!("WebGPU adapter: {}", summary.describe()));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the GPU…"));
        }
        WorkerReport::NoWebGpu { reason } => {
            page.set("adapter", &format!("No WebGPU adapter ({reason}). The CPU path will be used: it works, but training will be much slower."));
            page.status("pending", &format!("Multiplying {n}×{n} matrices on the CPU…"));
        }
        WorkerReport::Check(check) => {
            page.status(check.state(), &check.headline());
            page.set("detail", &check.detail());
        }
        WorkerReport::Failed { message } => page.status("error", &message),
    }
}

// ---------------------------------------------------------------------------------------------
// Worker
// ---------------------------------------------------------------------------------------------

/// Runs inside the Web Worker: opens WebGPU (once), answers each [`CheckRequest`] with reports.
#[wasm_bindgen]
pub fn start_worker() -> Result<(), JsError> {
    let scope: DedicatedWorkerGlobalScope =
        js_sys::global().dyn_into().map_err(|_| JsError::new("start_worker must run inside a dedicated Web Worker"))?;
    let gpu: Rc<RefCell<Option<Rc<GpuContext>>>> = Rc::default();
    let onmessage = {
        let scope = scope.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let scope = scope.clone();
            let gpu = Rc::clone(&gpu);
            let text = event.data().as_string().unwrap_or_default();
            wasm_bindgen_futures::spawn_local(async move {
                match serde_json::from_str::<CheckRequest>(&text) {
                    Ok(request) => handle_request(&scope, &gpu, request).await,
                    Err(e) => post(
                        &scope,
                        &WorkerReport::Failed { message: format!("the worker got a malformed request: {e}") },
                    ),
                }
            });
        })
    };
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(&scope, &WorkerReport::Ready);
    Ok(())
}

async fn handle_request(
    scope: &DedicatedWorkerGlobalScope,
    gpu: &RefCell<Option<Rc<GpuContext>>>,
    request: CheckRequest,
) {
    let existing = gpu.borrow().clone();
    let ctx = match existing {
        Some(ctx) => Some(ctx),
        None => match GpuContext::new().await {
            Ok(ctx) => {
                let info = ctx.adapter_info();
                post(scope, &WorkerReport::Adapter(AdapterSummary::from_info(info)));
                let ctx = Rc::new(ctx);
                *gpu.borrow_mut() = Some(Rc::clone(&ctx));
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
    let performance = scope.performance();
    let now = move || performance.as_ref().map_or(0.0, |p| p.now());
    let report = match run_check(&request, ctx.as_deref(), &now).await {
        Ok(check) => WorkerReport::Check(check),
        Err(e) => WorkerReport::Failed { message: format!("The matmul check failed: {e}") },
    };
    post(scope, &report);
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
