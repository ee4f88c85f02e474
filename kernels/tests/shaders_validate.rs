//! Every `.wgsl` in the crate is registered, parses and validates with the naga wgpu uses. No GPU.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};

use tabswarm_kernels::shaders;

fn validate(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
        .validate(&module)
        .map(|_| ())
        .map_err(|e| e.emit_to_string(source))
}

fn wgsl_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read kernels/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            wgsl_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            found.push(path);
        }
    }
}

#[test]
fn every_wgsl_file_is_registered_and_identical() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    wgsl_files(&src, &mut files);
    assert!(!files.is_empty(), "no .wgsl files found under {}", src.display());
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        let registered = shaders::ALL
            .iter()
            .find(|s| s.path == rel)
            .unwrap_or_else(|| panic!("{rel} is not listed in shaders::ALL"));
        let on_disk = std::fs::read_to_string(file).expect("read wgsl");
        assert_eq!(registered.source, on_disk, "{rel}: compiled-in source differs from the file");
    }
    assert_eq!(files.len(), shaders::ALL.len(), "shaders::ALL lists a file that does not exist");
}

#[test]
fn every_registered_shader_validates() {
    for shader in shaders::ALL {
        if let Err(report) = validate(shader.source) {
            panic!("{} failed naga validation:\n{report}", shader.path);
        }
    }
}

#[test]
fn validator_rejects_a_broken_shader() {
    // Writing to a read-only storage buffer must be caught: proves the check above can fail.
    let broken = shaders::ALL[0].source.replacen("c[row * dims.n + c_col] =", "a[row * dims.n + c_col] =", 1);
    assert_ne!(broken, shaders::ALL[0].source, "the mutation did not apply");
    assert!(validate(&broken).is_err());
    assert!(validate("fn main( {").is_err());
}
