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
fn every_wgsl_file_is_part_of_a_registered_shader_as_it_is_on_disk() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    wgsl_files(&src, &mut files);
    assert!(!files.is_empty(), "no .wgsl files found under {}", src.display());
    let read = |rel: &str| std::fs::read_to_string(src.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        assert!(
            shaders::ALL.iter().any(|s| s.parts.contains(&rel.as_str())),
            "{rel} is part of no shader in shaders::ALL"
        );
    }
    for shader in shaders::ALL {
        assert_eq!(shader.parts.first(), Some(&shader.path), "{}: its own file comes first", shader.path);
        let on_disk: String = shader.parts.iter().map(|part| read(part)).collect();
        assert_eq!(shader.source, on_disk, "{}: compiled-in source differs from its files", shader.path);
    }
    let kernels: std::collections::BTreeSet<&str> = shaders::ALL.iter().map(|s| s.path).collect();
    assert_eq!(kernels.len(), shaders::ALL.len(), "a kernel is listed twice");
}

#[test]
fn shared_parts_are_written_once() {
    // The sampling generator and the log-prob bindings live in their common files only.
    for shader in shaders::ALL {
        for part in shader.parts.iter().skip(1) {
            let own = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(shader.path))
                .expect("read");
            for line in std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part))
                .expect("read")
                .lines()
                .filter(|l| l.starts_with("fn ") || l.starts_with("const ") || l.starts_with("@group"))
            {
                assert!(!own.contains(line), "{}: `{line}` is also in {part}", shader.path);
            }
        }
    }
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
