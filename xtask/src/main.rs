//! `cargo xtask <command>`: the project's automation, so a fresh machine needs nothing but cargo.
//!
//! - `run`   build the page and serve it with the relay (http://127.0.0.1:8080 by default)
//! - `build` build the page into `web/dist` (wasm32 `wasm-release` profile + wasm-bindgen + static files)
//! - `test`  fmt, docs (README, links, `cargo doc`), contracts, clippy (native and wasm32), native
//!   tests, each fuzz target briefly, wasm tests in Chromium, end-to-end tests
//! - `bench` the kernel benchmarks
//! - `fuzz`  libFuzzer over every parser of untrusted bytes (`fuzz/`, nightly + cargo-fuzz)
//! - `dist`  the one-file relay for operators: a release `tabswarm-relay` with the page and the base
//!   checkpoint inside, its systemd unit and checksums, in `target/dist/`
//!
//! It installs what it can (the wasm32 target, the exact `wasm-bindgen` CLI) and says plainly what it
//! cannot (Chromium, a Vulkan driver).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use tabswarm_devchain::{Anvil, CHAIN_ID, DEV_KEYS};

mod docs;
mod fuzz;
#[cfg(test)]
mod layers;
mod tools;

use tools::{Step, XtaskError};

#[derive(Debug, Parser)]
#[command(about = "Tabswarm project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the page and start the relay serving it.
    Run {
        /// Address for the relay to listen on.
        #[arg(long, env = "TABSWARM_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Port for the relay.
        #[arg(long, env = "TABSWARM_PORT", default_value_t = 8080)]
        port: u16,
        /// Build the relay with optimisations (slower to build, what an operator deploys).
        #[arg(long)]
        release: bool,
        /// Also run a local chain (anvil on 127.0.0.1:8545, chain 31337, from npm), deploy the
        /// SwarmRegistry on it and have the relay register bindings and rounds there.
        #[arg(long)]
        chain: bool,
    },
    /// Build the page into web/dist.
    Build,
    /// Run every check and test: fmt, docs, contracts, clippy, native tests, browser tests, end-to-end tests.
    Test {
        /// Skip the tests that need Chromium (wasm-bindgen tests and end-to-end tests).
        #[arg(long)]
        no_browser: bool,
    },
    /// Run the kernel benchmarks and print Markdown tables.
    Bench,
    /// Fuzz every parser the swarm exposes to untrusted bytes (fuzz/; installs a nightly toolchain
    /// and cargo-fuzz if missing): each target for --secs seconds (default 60) or --runs executions.
    Fuzz {
        #[arg(long, conflicts_with = "runs")]
        secs: Option<u64>,
        #[arg(long)]
        runs: Option<u64>,
        /// Only these targets (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
    },
    /// Build the one-file relay for operators into target/dist/: a release tabswarm-relay with the
    /// page and the base checkpoint inside (nothing else to install), a systemd unit, SHA256SUMS.
    Dist,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::Run { host, port, release, chain } => run(&root, &host, port, release, chain),
        Cmd::Build => build_page(&root).map(|_| ()),
        Cmd::Test { no_browser } => test(&root, no_browser),
        Cmd::Dist => dist(&root),
        Cmd::Fuzz { secs, runs, targets } => {
            let budget = match (secs, runs) {
                (_, Some(n)) => fuzz::Budget::Runs(n),
                (s, None) => fuzz::Budget::Seconds(s.unwrap_or(60)),
            };
            fuzz::run(&root, &targets, budget).map(|_| ())
        }
        Cmd::Bench => {
            Step::new("kernel benchmarks", cargo(&root).args(["bench", "-p", "tabswarm-kernels", "--bench", "matmul"]))
                .run()
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

pub(crate) const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile the page's wasm is built with (`[profile.wasm-release]` in Cargo.toml).
const WASM_PROFILE: &str = "wasm-release";

/// Builds `web/dist`: the client for wasm32 (`wasm-release` profile), wasm-bindgen's JS glue, and the static files.
fn build_page(root: &Path) -> Result<PathBuf, XtaskError> {
    tools::ensure_wasm_target()?;
    let bindgen = tools::ensure_wasm_bindgen(root)?;
    Step::new(
        "build the wasm client",
        cargo(root).args([
            "build",
            "-p",
            "tabswarm-client",
            "--lib",
            "--profile",
            WASM_PROFILE,
            "--target",
            WASM_TARGET,
        ]),
    )
    .run()?;
    let dist = root.join("web/dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| XtaskError::io(&dist, e))?;
    }
    let wasm = root.join("target").join(WASM_TARGET).join(WASM_PROFILE).join("tabswarm_client.wasm");
    Step::new(
        "generate the JS bindings",
        Command::new(bindgen)
            // The `name` section (function names for stack traces) is a fifth of the client; drop it
            // here rather than with `strip`, which would also drop the `target_features` section
            // wasm-bindgen reads.
            .args(["--target", "web", "--no-typescript", "--remove-name-section", "--out-dir"])
            .arg(dist.join("pkg"))
            .arg(&wasm),
    )
    .run()?;
    let web = root.join("web");
    for entry in std::fs::read_dir(&web).map_err(|e| XtaskError::io(&web, e))? {
        let path = entry.map_err(|e| XtaskError::io(&web, e))?.path();
        let npm_file = path.extension().is_some_and(|ext| ext == "json");
        if path.is_file() && !npm_file {
            let to = dist.join(path.file_name().expect("file has a name"));
            std::fs::copy(&path, &to).map_err(|e| XtaskError::io(&to, e))?;
        }
    }
    copy_chart_library(root, &dist)?;
    let wasm_out = dist.join("pkg/tabswarm_client_bg.wasm");
    let size = std::fs::metadata(&wasm_out).map_err(|e| XtaskError::io(&wasm_out, e))?.len();
    println!("xtask: page built in {} (wasm {:.2} MB)", dist.display(), size as f64 / 1e6);
    Ok(dist)
}

/// The swarm's base checkpoint `cargo xtask run` serves: the small model (0.2 M parameters; why
/// that size: docs/learning.md, "Room to learn"), committed because pretraining it takes minutes of
/// a small CPU. `checkpoints/README.md` has the command that remakes it; its SHA-256 is checked
/// before the relay is given it (the relay then checks the payload hash inside the frame).
pub(crate) const BASE_CHECKPOINT: &str = "checkpoints/base-small-seed1.tswm";
pub(crate) const BASE_SHA256: &str = "995d4ea45432fdd6b7b06c7ea25002bba08d16b3855fee9798a52cdc01f7f45b";

/// Lower-case hex SHA-256, as `sha256sum` prints it.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn base_checkpoint(root: &Path) -> Result<PathBuf, XtaskError> {
    let path = root.join(BASE_CHECKPOINT);
    let bytes = std::fs::read(&path).map_err(|e| XtaskError::io(&path, e))?;
    let found = sha256_hex(&bytes);
    if found != BASE_SHA256 {
        return Err(XtaskError::Invalid(format!(
            "{BASE_CHECKPOINT} hashes to {found}, not to {BASE_SHA256}: restore it with `git checkout -- \
             {BASE_CHECKPOINT}` (checkpoints/README.md has the command that remakes it)"
        )));
    }
    Ok(path)
}

/// Builds `tabswarm-relay` with the page in `page` and the committed base built in (the relay's
/// `embedded` feature); returns where cargo put it. `release`: the release profile, what operators
/// get; otherwise a debug build sharing the workspace's test build.
fn build_relay_with_page(root: &Path, page: &Path, release: bool) -> Result<PathBuf, XtaskError> {
    let base = base_checkpoint(root)?;
    let mut cmd = cargo(root);
    if release {
        cmd.args(["build", "--release", "-p", "tabswarm-relay", "--features", "embedded"]);
    } else {
        // `--test dist` makes cargo resolve features as `cargo test --workspace` does (dev-
        // dependencies on), so nothing but the relay is built again; plain `cargo build` would
        // rebuild dozens of dependencies with other features.
        cmd.args([
            "build",
            "--workspace",
            "--bin",
            "tabswarm-relay",
            "--test",
            "dist",
            "--features",
            "tabswarm-relay/embedded",
        ]);
    }
    cmd.env("TABSWARM_EMBED_ASSETS", page).env("TABSWARM_EMBED_BASE", &base);
    Step::new("build the one-file relay (page and base inside)", &mut cmd).run()?;
    Ok(root.join("target").join(if release { "release" } else { "debug" }).join("tabswarm-relay"))
}

/// `cargo xtask dist`: target/dist/ holds `tabswarm-relay` (one file: the page, the widget and the
/// base checkpoint inside, their hashes checked at start), `tabswarm-relay.service` and
/// `SHA256SUMS`; the binary is started once from an empty folder with nothing on PATH to show it
/// needs nothing beside it.
fn dist(root: &Path) -> Result<(), XtaskError> {
    let page = build_page(root)?;
    let built = build_relay_with_page(root, &page, true)?;
    let out = root.join("target/dist");
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| XtaskError::io(&out, e))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| XtaskError::io(&out, e))?;
    let binary = out.join("tabswarm-relay");
    std::fs::copy(&built, &binary).map_err(|e| XtaskError::io(&built, e))?;
    let unit = root.join("relay/tabswarm-relay.service");
    std::fs::copy(&unit, out.join("tabswarm-relay.service")).map_err(|e| XtaskError::io(&unit, e))?;
    let mut sums = String::new();
    for name in ["tabswarm-relay", "tabswarm-relay.service"] {
        let path = out.join(name);
        let bytes = std::fs::read(&path).map_err(|e| XtaskError::io(&path, e))?;
        sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    let sums_path = out.join("SHA256SUMS");
    std::fs::write(&sums_path, sums).map_err(|e| XtaskError::io(&sums_path, e))?;
    tools::start_alone(&binary)?;
    let size = std::fs::metadata(&binary).map_err(|e| XtaskError::io(&binary, e))?.len();
    println!(
        "xtask: one-file relay in {} ({:.1} MB; with tabswarm-relay.service and SHA256SUMS). It started from an \
         empty folder with nothing on PATH. Install it: README.md, \"Run a relay\".",
        out.display(),
        size as f64 / 1e6
    );
    Ok(())
}

fn run(root: &Path, host: &str, port: u16, release: bool, with_chain: bool) -> Result<(), XtaskError> {
    let dist = build_page(root)?;
    let base = base_checkpoint(root)?;
    let relay = |extra: &[&str]| {
        let mut cmd = cargo(root);
        cmd.args(["run", "-p", "tabswarm-relay"]);
        if release {
            cmd.arg("--release");
        }
        cmd.arg("--").args(extra);
        cmd
    };
    let chain = if with_chain { Some(LocalChain::start(root, &relay)?) } else { None };
    let mut cmd = relay(&[]);
    cmd.args(["--host", host, "--port", &port.to_string(), "--assets"]).arg(&dist);
    cmd.arg("--base-checkpoint").arg(&base);
    // The relay's libp2p key, WebRTC certificate, ledger and swarm-model versions, kept across runs
    // (so is its swarm address). One folder per base: a relay refuses versions grown from another
    // base (those of the tiny base served before 2026-12-02 stay in `relay-data`). A fresh local
    // chain each run means a fresh registry: its own ledger, too.
    let data = if chain.is_some() { "relay-data-small-chain" } else { "relay-data-small" };
    cmd.arg("--data-dir").arg(root.join("target/tabswarm").join(data));
    if let Some(chain) = &chain {
        cmd.args(["--rpc-url", LocalChain::URL, "--registry", &chain.registry, "--chain-key-file"])
            .arg(&chain.key_file);
    }
    // A local swarm lets tabs without a wallet share too, credited to nobody; a public relay
    // leaves this off (unbound publishers are then refused and scored down).
    cmd.arg("--accept-unbound");
    println!("xtask: starting the relay; open http://{host}:{port} once it says it is serving (Ctrl-C stops it)");
    Step::new("relay", &mut cmd).run()
}

/// anvil for `cargo xtask run --chain` (the shared `tabswarm_devchain::Anvil`, on the port wallets
/// expect), with the registry deployed on it; stopped (by its PID) when the relay stops.
struct LocalChain {
    _anvil: Anvil,
    registry: String,
    key_file: PathBuf,
}

impl LocalChain {
    const PORT: u16 = 8545;
    const URL: &'static str = "http://127.0.0.1:8545";

    fn start(root: &Path, relay: &dyn Fn(&[&str]) -> Command) -> Result<Self, XtaskError> {
        install_contract_tools(root)?;
        println!("xtask: starting a local chain (anvil, chain {CHAIN_ID}) on {}", Self::URL);
        let anvil =
            Anvil::start_on(Self::PORT).map_err(|e| XtaskError::Missing(format!("{e} (or run without --chain)")))?;
        let key_file = root.join("target/tabswarm/chain-dev-key");
        // anvil's first development key: public knowledge, funded on the local chain only.
        std::fs::write(&key_file, DEV_KEYS[0]).map_err(|e| XtaskError::io(&key_file, e))?;
        let key_path = key_file.to_string_lossy().into_owned();
        let mut deploy = relay(&["deploy-registry", "--rpc-url", Self::URL, "--chain-key-file", &key_path]);
        println!("\n==> deploy the SwarmRegistry on the local chain");
        let output = deploy
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|error| XtaskError::Spawn { program: "cargo run -p tabswarm-relay".into(), error })?;
        if !output.status.success() {
            return Err(XtaskError::StepFailed { step: "deploy-registry".into(), status: output.status.to_string() });
        }
        let registry = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Self { _anvil: anvil, registry, key_file })
    }
}

/// The chart library the page draws with, pinned in `web/package.json` and its lockfile.
const UPLOT_VERSION: &str = "1.6.32";
/// The accessibility audit the end-to-end tests inject into the page (a development dependency
/// in `web/package.json`; never served).
const AXE_VERSION: &str = "4.14.1";

/// Whether `web/node_modules` holds `package` at `version`.
fn npm_installed(web: &Path, package: &str, version: &str) -> bool {
    let manifest = web.join("node_modules").join(package).join("package.json");
    std::fs::read_to_string(manifest).is_ok_and(|text| text.contains(&format!("\"version\": \"{version}\"")))
}

/// Installs uPlot (and axe-core, for the tests) from npm into `web/node_modules` if either is
/// missing or another version (no install scripts run), and copies uPlot's ES module and
/// stylesheet into `dist/vendor/`, where the relay serves them with the page.
fn copy_chart_library(root: &Path, dist: &Path) -> Result<(), XtaskError> {
    let web = root.join("web");
    if !npm_installed(&web, "uplot", UPLOT_VERSION) || !npm_installed(&web, "axe-core", AXE_VERSION) {
        Step::new(
            "npm ci (web: uPlot, axe-core)",
            Command::new("npm").args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"]).current_dir(&web),
        )
        .run()?;
    }
    let vendor = dist.join("vendor");
    std::fs::create_dir_all(&vendor).map_err(|e| XtaskError::io(&vendor, e))?;
    for file in ["uPlot.esm.js", "uPlot.min.css"] {
        let from = web.join("node_modules/uplot/dist").join(file);
        let to = vendor.join(file);
        std::fs::copy(&from, &to).map_err(|e| XtaskError::io(&from, e))?;
    }
    let license = web.join("node_modules/uplot/LICENSE");
    if license.exists() {
        let to = vendor.join("uPlot.LICENSE.txt");
        std::fs::copy(&license, &to).map_err(|e| XtaskError::io(&license, e))?;
    }
    Ok(())
}

/// Installs the contract toolchain (solc, anvil) from npm into `contracts/node_modules` if
/// missing; no install scripts run (anvil's binary comes in its platform package).
fn install_contract_tools(root: &Path) -> Result<(), XtaskError> {
    let dir = root.join("contracts");
    if dir.join("node_modules/solc").exists()
        && dir.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil").exists()
    {
        return Ok(());
    }
    Step::new(
        "npm ci (contracts: solc, anvil)",
        Command::new("npm").args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"]).current_dir(&dir),
    )
    .run()
}

/// Compiles `contracts/SwarmRegistry.sol` with the pinned solcjs and fails when the committed
/// `contracts/out/` differs (installing solc and anvil, which the registry tests start, first).
fn check_contracts(root: &Path) -> Result<(), XtaskError> {
    let dir = root.join("contracts");
    install_contract_tools(root)?;
    Step::new(
        "contracts: committed artifacts match the source",
        Command::new("node").args(["compile.mjs", "--check"]).current_dir(&dir),
    )
    .run()
}

/// The README gives the two commands; every relative link in README.md and docs/*.md resolves.
fn check_docs(root: &Path) -> Result<(), XtaskError> {
    println!("\n==> docs: README commands and relative links in README.md, docs/*.md");
    let problems = docs::check(root).map_err(|e| XtaskError::io(root, e))?;
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        eprintln!("  {problem}");
    }
    Err(XtaskError::StepFailed { step: "docs".into(), status: format!("{} problem(s) above", problems.len()) })
}

/// `cargo doc` without warnings (broken intra-doc links above all), natively for the workspace
/// and for wasm32 for the crates whose browser-only items exist there.
fn check_rustdoc(root: &Path) -> Result<(), XtaskError> {
    let doc = |extra: &[&str]| {
        let mut cmd = cargo(root);
        cmd.args(["doc", "--no-deps"]).args(extra).env("RUSTDOCFLAGS", "-D warnings");
        cmd
    };
    Step::new("docs: cargo doc (native)", &mut doc(&["--workspace"])).run()?;
    Step::new(
        "docs: cargo doc (wasm32)",
        &mut doc(&["-p", "tabswarm-client", "-p", "tabswarm-net", "-p", "tabswarm-kernels", "--target", WASM_TARGET]),
    )
    .run()
}

fn test(root: &Path, no_browser: bool) -> Result<(), XtaskError> {
    Step::new("cargo fmt --check", cargo(root).args(["fmt", "--all", "--check"])).run()?;
    check_docs(root)?;
    check_contracts(root)?;
    Step::new("clippy (native)", cargo(root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
        .run()?;
    tools::ensure_wasm_target()?;
    Step::new(
        "clippy (wasm32)",
        cargo(root).args([
            "clippy",
            "-p",
            "tabswarm-client",
            "-p",
            "tabswarm-net",
            "-p",
            "tabswarm-learn",
            "-p",
            "tabswarm-aggregate",
            "-p",
            "tabswarm-model",
            "-p",
            "tabswarm-kernels",
            "--lib",
            "--tests",
            "--target",
            WASM_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )
    .run()?;
    // The kernels' wasm-bindgen tests build without `fused` (so without burn): a feature set no other
    // step compiles. Built here, minutes in, so a break shows before the hour of native tests.
    Step::new(
        "build wasm tests (kernels without `fused`)",
        cargo(root).args([
            "test",
            "-p",
            "tabswarm-kernels",
            "--no-default-features",
            "--target",
            WASM_TARGET,
            "--no-run",
        ]),
    )
    .run()?;
    check_rustdoc(root)?;
    Step::new("native tests", cargo(root).args(["test", "--workspace"])).run()?;
    // Every fuzz target briefly, from its seeds (`cargo xtask fuzz` runs them for longer); installs
    // a nightly toolchain and cargo-fuzz if missing.
    fuzz::run(root, &[], fuzz::Budget::Seconds(5))?;
    if no_browser {
        println!("xtask: --no-browser given: skipped the wasm tests in Chromium and the end-to-end tests");
        return Ok(());
    }

    let browser = tools::Browser::find()?;
    let dist = build_page(root)?;
    let runner = tools::ensure_wasm_bindgen(root)?.with_file_name("wasm-bindgen-test-runner");
    let webdriver_json = browser.write_webdriver_json(root)?;
    let isolation = tools::Isolation::detect();

    // Compiled outside the namespace (it may need the registry) by the step after clippy; run
    // inside it (loopback only).
    let mut wasm_tests = cargo(root);
    // Without `fused`: its burn kernels are checked in Chromium by the page (end-to-end tests).
    wasm_tests
        .args(["test", "-p", "tabswarm-kernels", "--no-default-features", "--target", WASM_TARGET, "--offline"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner)
        .env("CHROMEDRIVER", &browser.chromedriver)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver_json)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "300");
    Step::new("wasm tests in headless Chromium (WebGPU)", &mut isolation.wrap(wasm_tests)).run()?;

    // The browser tests are the workspace's `#[ignore]`d ones (tests/tests/page.rs). They run from the
    // test binaries "native tests" already built: `cargo test -p tabswarm-e2e` would resolve other
    // features, build burn, libp2p and the relay a second time and double the target dir.
    // tests/tests/dist.rs runs the one-file relay (built here, debug, from the same test build).
    let built = build_relay_with_page(root, &dist, false)?;
    let one_file = root.join("target/tabswarm/one-file-relay/tabswarm-relay");
    std::fs::create_dir_all(one_file.parent().expect("a folder")).map_err(|e| XtaskError::io(&one_file, e))?;
    std::fs::copy(&built, &one_file).map_err(|e| XtaskError::io(&built, e))?;
    let mut e2e = cargo(root);
    e2e.args(["test", "--workspace", "--tests", "--offline", "--", "--ignored", "--test-threads=1"])
        .env("TABSWARM_DIST_RELAY", &one_file)
        .env("TABSWARM_ASSETS", &dist)
        .env("CHROMEDRIVER", &browser.chromedriver)
        .env("CHROME", &browser.chrome);
    Step::new("end-to-end tests (relay + page in headless Chromium)", &mut isolation.wrap(e2e)).run()?;
    println!("xtask: all checks passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_pins_the_chart_library_xtask_installs() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        let manifest = std::fs::read_to_string(web.join("package.json")).expect("web/package.json");
        let lock = std::fs::read_to_string(web.join("package-lock.json")).expect("web/package-lock.json");
        for (package, version) in [("uplot", super::UPLOT_VERSION), ("axe-core", super::AXE_VERSION)] {
            let pinned = format!("\"{package}\": \"{version}\"");
            assert!(manifest.contains(&pinned), "web/package.json must pin {pinned}");
            let locked = format!("\"node_modules/{package}\": {{\n      \"version\": \"{version}\"");
            assert!(lock.contains(&locked), "web/package-lock.json must lock {package} {version}");
        }
        assert!(lock.contains("\"integrity\": \"sha512-"), "the lockfile holds the package's hash");
    }

    use super::*;

    #[test]
    fn the_committed_base_is_the_one_run_serves_and_a_changed_one_is_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert_eq!(base_checkpoint(&root).expect("the committed base"), root.join(BASE_CHECKPOINT));

        let elsewhere = std::env::temp_dir().join(format!("xtask-base-{}", std::process::id()));
        let copy = elsewhere.join(BASE_CHECKPOINT);
        std::fs::create_dir_all(copy.parent().expect("a folder")).expect("mkdir");
        let mut bytes = std::fs::read(root.join(BASE_CHECKPOINT)).expect("read");
        bytes[100] ^= 1;
        std::fs::write(&copy, &bytes).expect("write");
        let refused = base_checkpoint(&elsewhere).expect_err("one flipped bit").to_string();
        std::fs::remove_file(&copy).expect("remove");
        assert!(refused.contains("hashes to") && refused.contains("git checkout"), "{refused}");
        let missing = base_checkpoint(&elsewhere).expect_err("no file").to_string();
        let _ = std::fs::remove_dir_all(&elsewhere);
        assert!(missing.contains("base-small-seed1.tswm"), "{missing}");
    }
}
