//! The tools xtask drives: cargo steps, the wasm toolchain, the browser, the network namespace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why an xtask command stopped.
#[derive(Debug)]
pub enum XtaskError {
    /// A step's process exited unsuccessfully.
    StepFailed { step: String, status: String },
    /// A program could not be started at all.
    Spawn { program: String, error: std::io::Error },
    /// A file operation failed.
    Io { path: PathBuf, error: std::io::Error },
    /// Something the machine lacks, with the command that fixes it.
    Missing(String),
    /// A file of the repository is not what it should be, with how to mend it.
    Invalid(String),
}

impl XtaskError {
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), error }
    }
}

impl fmt::Display for XtaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StepFailed { step, status } => write!(f, "step '{step}' failed ({status})"),
            Self::Spawn { program, error } => write!(f, "cannot start {program}: {error}"),
            Self::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Missing(what) | Self::Invalid(what) => f.write_str(what),
        }
    }
}

/// One named command, echoed before it runs.
pub struct Step<'a> {
    name: &'a str,
    command: &'a mut Command,
}

impl<'a> Step<'a> {
    pub fn new(name: &'a str, command: &'a mut Command) -> Self {
        Self { name, command }
    }

    pub fn run(self) -> Result<(), XtaskError> {
        let shown: Vec<String> = std::iter::once(self.command.get_program())
            .chain(self.command.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        println!("\n==> {}: {}", self.name, shown.join(" "));
        let started = std::time::Instant::now();
        let status = self.command.status().map_err(|error| XtaskError::Spawn { program: shown[0].clone(), error })?;
        // The time of every step, so a CI log shows where its hour went.
        println!("<== {}: {} after {:.0} s", self.name, status, started.elapsed().as_secs_f64());
        if status.success() {
            Ok(())
        } else {
            Err(XtaskError::StepFailed { step: self.name.to_owned(), status: status.to_string() })
        }
    }
}

/// Adds the wasm32 target through rustup if it is missing.
pub fn ensure_wasm_target() -> Result<(), XtaskError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|error| XtaskError::Spawn { program: "rustup".into(), error })?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == crate::WASM_TARGET) {
        return Ok(());
    }
    println!("xtask: the {} target is missing; adding it with rustup", crate::WASM_TARGET);
    Step::new("add the wasm32 target", Command::new("rustup").args(["target", "add", crate::WASM_TARGET])).run()
}

/// The version of `name` recorded in a Cargo.lock.
pub fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

/// The version a `wasm-bindgen --version` printed (`wasm-bindgen 0.2.130`).
fn reported_version(output: &str) -> Option<&str> {
    output.split_whitespace().nth(1)
}

fn version_of(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").stderr(Stdio::null()).output().ok()?;
    reported_version(&String::from_utf8_lossy(&output.stdout)).map(str::to_owned)
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// Returns the path of a `wasm-bindgen` CLI of exactly the version in Cargo.lock, installing it with
/// `cargo install` (once, a few minutes) if the one found is missing or of another version.
pub fn ensure_wasm_bindgen(root: &Path) -> Result<PathBuf, XtaskError> {
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).map_err(|e| XtaskError::io(&lock_path, e))?;
    let wanted = locked_version(&lock, "wasm-bindgen")
        .ok_or_else(|| XtaskError::Missing("Cargo.lock names no wasm-bindgen version".into()))?;
    let candidates = [on_path("wasm-bindgen"), Some(cargo_home().join("bin/wasm-bindgen"))];
    let mut found = Vec::new();
    for candidate in candidates.into_iter().flatten() {
        match version_of(&candidate) {
            Some(v) if v == wanted => return Ok(candidate),
            Some(v) => found.push(format!("{} is {v}", candidate.display())),
            None => {}
        }
    }
    let why = if found.is_empty() { "none is installed".to_owned() } else { found.join(", ") };
    println!(
        "xtask: the wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock ({wanted}), but {why}. \
         Installing wasm-bindgen-cli {wanted} with cargo install (a few minutes, once)."
    );
    Step::new(
        "install wasm-bindgen-cli",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &wanted,
        ]),
    )
    .run()?;
    let installed = cargo_home().join("bin/wasm-bindgen");
    match version_of(&installed) {
        Some(v) if v == wanted => Ok(installed),
        other => Err(XtaskError::Missing(format!(
            "installed wasm-bindgen-cli {wanted}, but {} reports {other:?}",
            installed.display()
        ))),
    }
}

/// Chromium and chromedriver for the browser tests.
#[derive(Debug)]
pub struct Browser {
    pub chrome: PathBuf,
    pub chromedriver: PathBuf,
}

impl Browser {
    pub fn find() -> Result<Self, XtaskError> {
        let pick = |var: &str, names: &[&str]| -> Option<PathBuf> {
            if let Some(p) = std::env::var_os(var) {
                return Some(PathBuf::from(p));
            }
            names.iter().find_map(|n| on_path(n))
        };
        let chrome = pick("CHROME", &["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = pick("CHROMEDRIVER", &["chromedriver"]);
        match (chrome, chromedriver) {
            (Some(chrome), Some(chromedriver)) => Ok(Self { chrome, chromedriver }),
            _ => Err(XtaskError::Missing(
                "the browser tests need Chromium and chromedriver: on Debian/Ubuntu `apt-get install chromium chromium-driver` \
                 (or set CHROME and CHROMEDRIVER), or skip them with `cargo xtask test --no-browser`"
                    .into(),
            )),
        }
    }

    /// Writes the capabilities file wasm-bindgen-test-runner reads; returns its path.
    pub fn write_webdriver_json(&self, root: &Path) -> Result<PathBuf, XtaskError> {
        let args: Vec<String> = tabswarm_e2e::HEADLESS_CHROME_ARGS
            .iter()
            .chain([&tabswarm_e2e::ENABLE_WEBGPU])
            .map(|a| format!("\"{a}\""))
            .collect();
        let json = format!(
            "{{\"goog:chromeOptions\": {{\"binary\": \"{}\", \"args\": [{}]}}}}\n",
            self.chrome.display(),
            args.join(", ")
        );
        let path = root.join("target/webdriver.json");
        std::fs::create_dir_all(root.join("target")).map_err(|e| XtaskError::io(&path, e))?;
        std::fs::write(&path, json).map_err(|e| XtaskError::io(&path, e))?;
        Ok(path)
    }
}

/// How browser tests are cut off from every network but loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// `unshare --net` as root.
    Root,
    /// `unshare --map-root-user --net` in a user namespace.
    UserNamespace,
    /// Not available here: tests run on the host network (with a warning).
    None,
}

/// Brings up loopback inside the new namespace. The label address lets webrtc-rs (which ignores
/// loopback candidates) answer later; traffic still flows over 127.0.0.1.
const NAMESPACE_SETUP: &str =
    "ip link set lo up && { ip addr add 198.51.100.1/32 dev lo 2>/dev/null || true; } && exec \"$@\"";

impl Isolation {
    pub fn detect() -> Self {
        if std::env::var_os("TABSWARM_NO_NETNS").is_some() {
            println!("xtask: TABSWARM_NO_NETNS is set: browser tests use the host network");
            return Self::None;
        }
        let works = |args: &[&str]| {
            Command::new("unshare")
                .args(args)
                .args(["sh", "-c", "ip link set lo up"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works(&["--net", "--"]) {
            Self::Root
        } else if works(&["--map-root-user", "--net", "--"]) {
            Self::UserNamespace
        } else {
            println!(
                "xtask: warning: cannot create a loopback-only network namespace (needs `unshare` from util-linux, `ip` from \
                 iproute2, and root or user namespaces); browser tests will use the host network"
            );
            Self::None
        }
    }

    /// Wraps `inner` so it runs inside a fresh network namespace with only loopback up.
    pub fn wrap(self, inner: Command) -> Command {
        let flags: &[&str] = match self {
            Self::Root => &["--net"],
            Self::UserNamespace => &["--map-root-user", "--net"],
            Self::None => return inner,
        };
        let mut cmd = Command::new("unshare");
        cmd.args(flags).args(["--", "sh", "-c", NAMESPACE_SETUP, "sh"]).arg(inner.get_program()).args(inner.get_args());
        if let Some(dir) = inner.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (key, value) in inner.get_envs() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }
}

/// Starts `binary` (a relay) the way a fresh machine would: from an empty folder, with no
/// environment and nothing on `PATH` (no Rust toolchain, no npm), on ports the system picks; waits
/// for the line saying it serves, then stops it with SIGTERM. Fails with what it printed otherwise.
pub fn start_alone(binary: &Path) -> Result<(), XtaskError> {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    println!("\n==> start {} alone (empty folder, nothing on PATH)", binary.display());
    let alone = std::env::temp_dir().join(format!("tabswarm-dist-check-{}", std::process::id()));
    let (work, path) = (alone.join("srv"), alone.join("empty-path"));
    for dir in [&work, &path] {
        std::fs::create_dir_all(dir).map_err(|e| XtaskError::io(dir, e))?;
    }
    let mut child = Command::new(binary)
        .current_dir(&work)
        .env_clear()
        .env("PATH", &path)
        .args(["--port", "0", "--webrtc-port", "0", "--p2p-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| XtaskError::Spawn { program: binary.display().to_string(), error })?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Drained all along: a full pipe would block the relay's logging, and with it the relay.
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let serving = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("Tabswarm relay serving") => break Some(line),
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            _ => break None,
        }
    };
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().map_err(|error| XtaskError::Spawn { program: binary.display().to_string(), error })?;
    let errors = errors.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&alone);
    match serving {
        Some(line) if status.success() => {
            println!("xtask: {line}; stopped by SIGTERM");
            Ok(())
        }
        Some(_) => Err(XtaskError::Invalid(format!("the relay served but exited with {status} on SIGTERM:\n{errors}"))),
        None => Err(XtaskError::Invalid(format!("the relay did not start serving alone ({status}):\n{errors}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn args_of(cmd: &Command) -> Vec<OsString> {
        cmd.get_args().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_locked_version_of_exactly_that_crate() {
        let lock = "[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.80\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"x\"\n";
        assert_eq!(locked_version(lock, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(locked_version(lock, "wasm-bindgen-futures").as_deref(), Some("0.4.80"));
        assert_eq!(locked_version(lock, "wgpu"), None);
    }

    #[test]
    fn the_workspace_lock_pins_the_manifest_version() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
        let locked = locked_version(&lock, "wasm-bindgen").expect("wasm-bindgen in lock");
        assert!(
            manifest.contains(&format!("wasm-bindgen = \"={locked}\"")),
            "Cargo.toml must pin wasm-bindgen ={locked}"
        );
    }

    #[test]
    fn parses_the_cli_version_line() {
        assert_eq!(reported_version("wasm-bindgen 0.2.130\n"), Some("0.2.130"));
        assert_eq!(reported_version(""), None);
    }

    #[test]
    fn wrapping_keeps_program_args_env_and_dir() {
        let mut inner = Command::new("cargo");
        inner.args(["test", "-p", "x"]).env("A", "1").current_dir("/tmp");
        let wrapped = Isolation::Root.wrap(inner);
        assert_eq!(wrapped.get_program(), "unshare");
        let args = args_of(&wrapped);
        assert_eq!(&args[..3], ["--net", "--", "sh"].map(OsString::from));
        assert_eq!(&args[args.len() - 4..], ["cargo", "test", "-p", "x"].map(OsString::from));
        assert!(wrapped.get_envs().any(|(k, v)| k == "A" && v == Some("1".as_ref())));
        assert_eq!(wrapped.get_current_dir(), Some(Path::new("/tmp")));
        let unwrapped = Isolation::None.wrap(Command::new("cargo"));
        assert_eq!(unwrapped.get_program(), "cargo");
    }
}
