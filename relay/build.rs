//! With the `embedded` feature (what `cargo xtask dist` builds), writes `$OUT_DIR/embedded.rs`:
//! every file of the built page (`TABSWARM_EMBED_ASSETS`, a `web/dist` made by `cargo xtask
//! build`) and the base checkpoint (`TABSWARM_EMBED_BASE`) as `include_bytes!`, each with the
//! SHA-256 it had at build time, which the relay checks again at start (`src/embedded.rs`).
//! Without the feature it writes nothing of substance and reads no environment.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED").is_none() {
        std::fs::write(&out, "").expect("write embedded.rs");
        return;
    }
    println!("cargo:rerun-if-env-changed=TABSWARM_EMBED_ASSETS");
    println!("cargo:rerun-if-env-changed=TABSWARM_EMBED_BASE");
    let var = |name: &str, what: &str| -> PathBuf {
        let Some(value) = std::env::var_os(name) else {
            panic!(
                "the `embedded` feature builds the page and the base into the relay: set {name} to {what} \
                 (`cargo xtask dist` sets both)"
            )
        };
        let path = PathBuf::from(value);
        std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{name}={}: {e}", path.display()))
    };
    let assets = var("TABSWARM_EMBED_ASSETS", "the built page (web/dist, from `cargo xtask build`)");
    let base = var("TABSWARM_EMBED_BASE", "the base checkpoint (checkpoints/base-small-seed1.tswm)");
    if !assets.join("index.html").is_file() {
        panic!(
            "TABSWARM_EMBED_ASSETS={}: no index.html there; build the page with `cargo xtask build`",
            assets.display()
        );
    }

    let mut files = Vec::new();
    collect(&assets, &mut files);
    files.sort();
    let mut code = String::from("/// Every file of the page: (URL path, bytes, SHA-256 at build time).\n");
    code.push_str("pub(crate) static PAGE: &[(&str, &[u8], &str)] = &[\n");
    for path in &files {
        let key = path.strip_prefix(&assets).expect("under the folder").to_string_lossy().replace('\\', "/");
        writeln!(code, "    ({key:?}, include_bytes!({:?}), {:?}),", path.display().to_string(), sha256(path))
            .expect("write to a String");
        println!("cargo:rerun-if-changed={}", path.display());
    }
    code.push_str("];\n");
    let name = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    writeln!(
        code,
        "/// The base checkpoint: (file name, bytes, SHA-256 at build time).\n\
         pub(crate) static BASE: (&str, &[u8], &str) = ({name:?}, include_bytes!({:?}), {:?});",
        base.display().to_string(),
        sha256(&base)
    )
    .expect("write to a String");
    println!("cargo:rerun-if-changed={}", base.display());
    println!("cargo:rerun-if-changed={}", assets.display());
    std::fs::write(&out, code).expect("write embedded.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}
