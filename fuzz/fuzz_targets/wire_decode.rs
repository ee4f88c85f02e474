//! libFuzzer target: `targets::wire_decode` (see `../targets.rs`). Run with `cargo xtask fuzz`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::wire_decode(data));
