//! `cargo xtask fuzz`: libFuzzer over every parser the swarm exposes to untrusted bytes (`fuzz/`),
//! through cargo-fuzz on a nightly toolchain, both installed here if missing. Each target starts
//! from its committed seeds (`fuzz/corpus/<target>`) and keeps what it finds in
//! `target/fuzz-corpus/<target>`; a crash stops the run naming the input and how to replay it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::tools::{Step, XtaskError};

/// The targets, as `fuzz/Cargo.toml` names its binaries (a test checks the two agree).
pub const TARGETS: [&str; 5] = ["wire_decode", "binding", "checkpoint_frame", "api_json", "model_update"];

/// The cargo-fuzz that xtask installs.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// How long each target runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Seconds(u64),
    Runs(u64),
}

/// What one target did.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub executions: u64,
    pub seconds: f64,
}

fn ensure_nightly() -> Result<(), XtaskError> {
    let listed = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|error| XtaskError::Spawn { program: "rustup".into(), error })?;
    if String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    Step::new(
        "install the nightly toolchain (cargo-fuzz needs it)",
        Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
    )
    .run()
}

fn ensure_cargo_fuzz() -> Result<(), XtaskError> {
    let found = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(CARGO_FUZZ_VERSION));
    if found {
        return Ok(());
    }
    Step::new(
        "install cargo-fuzz",
        Command::new("cargo").args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION]),
    )
    .run()
}

/// The executions libFuzzer reports at the end (`-print_final_stats=1`).
pub fn executions(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| line.strip_prefix("stat::number_of_executed_units:")?.trim().parse().ok())
}

/// Runs `targets` (all when empty) for `budget` each; returns what each did.
pub fn run(root: &Path, targets: &[String], budget: Budget) -> Result<Vec<Outcome>, XtaskError> {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let chosen: Vec<&'static str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets
            .iter()
            .map(|t| {
                TARGETS.iter().copied().find(|known| known == t).ok_or_else(|| {
                    XtaskError::Invalid(format!("no fuzz target {t:?}; the targets are {}", TARGETS.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?
    };
    Step::new("build the fuzz targets", Command::new("cargo").args(["+nightly", "fuzz", "build"]).current_dir(root))
        .run()?;
    let mut outcomes = Vec::new();
    for target in chosen {
        let corpus = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| XtaskError::io(&corpus, e))?;
        let limit = match budget {
            Budget::Seconds(s) => format!("-max_total_time={s}"),
            Budget::Runs(n) => format!("-runs={n}"),
        };
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .arg(root.join("fuzz/corpus").join(target))
            .args(["--", &limit, "-max_len=16384", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .current_dir(root)
            .stderr(Stdio::piped());
        println!("\n==> fuzz {target} ({limit})");
        let started = Instant::now();
        let output = cmd.output().map_err(|error| XtaskError::Spawn { program: "cargo fuzz".into(), error })?;
        let seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(XtaskError::StepFailed {
                step: format!("fuzz {target}"),
                status: format!(
                    "{}; the input is under fuzz/artifacts/{target}/ (replay: cargo +nightly fuzz run {target} <that file>; \
                     once fixed, commit it to fuzz/regressions/{target}/):\n{}",
                    output.status,
                    tail.join("\n")
                ),
            });
        }
        let executions = executions(&stderr).unwrap_or(0);
        println!("xtask: fuzz {target}: {executions} executions in {seconds:.0} s, no crash");
        outcomes.push(Outcome { target, executions, seconds });
    }
    println!("\n| target | executions | seconds | crashes |\n|---|---|---|---|");
    for o in &outcomes {
        println!("| `{}` | {} | {:.0} | 0 |", o.target, o.executions, o.seconds);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_are_the_fuzz_crates_binaries_each_with_seeds() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
        let mut named: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
            .filter(|n| *n != "tabswarm-fuzz")
            .collect();
        named.sort();
        let mut ours = TARGETS.to_vec();
        ours.sort();
        assert_eq!(named, ours, "fuzz/Cargo.toml's binaries and xtask's list differ");
        for target in TARGETS {
            assert!(fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "{target}.rs");
            let seeds = std::fs::read_dir(fuzz.join("corpus").join(target)).map(|d| d.count()).unwrap_or(0);
            assert!(seeds > 0, "fuzz/corpus/{target} has no seeds");
        }
    }

    #[test]
    fn reads_the_executions_from_libfuzzers_final_stats() {
        let stderr = "#2\tINITED\nDone 12345 runs in 5 second(s)\nstat::number_of_executed_units: 12345\nstat::average_exec_per_sec:     2469\n";
        assert_eq!(executions(stderr), Some(12345));
        assert_eq!(executions("crashed"), None);
    }
}
