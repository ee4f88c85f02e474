//! The Tabswarm browser client.
//!
//! Two entry points share one wasm module: [`start_page`](web::start_page) runs on the page's main
//! thread and only renders and talks to the worker; [`start_worker`](web::start_worker) runs inside
//! the Web Worker, which owns all GPU and CPU-heavy work so the page never stalls. The message
//! types between them and the checks themselves are plain Rust ([`report`], [`check`]) and are
//! tested natively; only `web` touches the browser.

pub mod check;
pub mod fused_check;
pub mod learn;
pub mod learn_report;
pub mod model;
pub mod net;
pub mod report;
pub mod training;
pub mod wallet;

#[cfg(target_arch = "wasm32")]
mod web;
