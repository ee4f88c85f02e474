//! libFuzzer target: `targets::checkpoint_frame` (see `../targets.rs`). Run with `cargo xtask fuzz`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::checkpoint_frame(data));
