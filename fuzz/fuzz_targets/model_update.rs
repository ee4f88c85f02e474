//! libFuzzer target: `targets::model_update` (see `../targets.rs`). Run with `cargo xtask fuzz`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::model_update(data));
