//! The Tabswarm browser client: the page a contributor opens and the Web Worker it starts.
//!
//! One wasm module has two entry points. `start_page` (`page.rs`) runs on the main thread: it
//! renders, runs the swarm node (`tabswarm_net`, over WebRTC: browsers offer it to pages, not to
//! workers), holds the wallet panel (`identity.rs`, `provider.rs`, `keystore.rs`) and talks to the
//! worker. `start_worker` (`worker.rs`) runs in the Web Worker, which owns all GPU and CPU-heavy
//! work: the kernel checks and the training run (`tabswarm_learn`). The two exchange
//! [`messages`]. The model, the learning and the network live in their own crates; this one is
//! only the browser's part.
//!
//! Browser-free parts are public and tested natively: [`messages`] (page ⇄ worker and the words
//! the page shows), [`check`] and [`fused_check`] (kernels against their references),
//! [`wallet`] (what EIP-1193 answers mean, whether a stored binding still serves) and [`ui`] (the
//! page's ids and data names, shared with the end-to-end tests). The browser glue is compiled for
//! wasm32 only.

pub mod check;
pub mod fused_check;
pub mod messages;
pub mod ui;
pub mod wallet;

#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod identity;
#[cfg(target_arch = "wasm32")]
mod keystore;
#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod provider;
#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn init() {
    console_error_panic_hook::set_once();
}
