//! The `tabswarm-peer` binary as a GPU owner runs it: `run --backend gpu` trains on the wgpu
//! backend and says so (it once passed the CPU backend whatever was asked), `--backend cpu` on the
//! CPU, and bad arguments are refused with what was wrong. The relay named is a TCP address where
//! nothing listens: the peer keeps redialling it while it learns, as it does when a relay is down.
//! Set `TABSWARM_SKIP_GPU=1` to skip the GPU run on a machine with no adapter; CI never sets it.

use std::process::{Command, Output};

fn peer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tabswarm-peer")).args(args).output().expect("start tabswarm-peer")
}

/// A relay address nobody answers at (port 1 on loopback, with a well-formed peer id).
fn nobody() -> String {
    format!("/ip4/127.0.0.1/tcp/1/p2p/{}", libp2p::identity::Keypair::generate_ed25519().public().to_peer_id())
}

fn one_round_on(backend: &str) -> (String, String) {
    let relay = nobody();
    let out = peer(&["run", "--relay", &relay, "--rounds", "1", "--backend", backend, "--families", "compare"]);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "tabswarm-peer run --backend {backend} failed\n{stderr}\n{stdout}");
    (stdout, stderr)
}

#[test]
fn run_trains_on_the_backend_it_is_given() {
    let (stdout, stderr) = one_round_on("cpu");
    assert!(stderr.contains("training on CPU\n"), "{stderr}");
    assert!(stdout.contains("round     1"), "{stdout}");
    // The curriculum's level for the one family asked, printed once it is known.
    assert!(stdout.contains("levels: compare 1\n"), "{stdout}");

    if std::env::var_os("TABSWARM_SKIP_GPU").is_some() {
        eprintln!("TABSWARM_SKIP_GPU is set: skipping the GPU run");
        return;
    }
    let (stdout, stderr) = one_round_on("gpu");
    assert!(stderr.contains("training on wgpu (native GPU)\n"), "{stderr}");
    assert!(stdout.contains("round     1"), "{stdout}");
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let out = peer(&["run", "--relay", "/ip4/127.0.0.1/tcp/1", "--rounds", "1", "--backend", "tpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tpu' for '--backend"));

    let out = peer(&["run", "--relay", "not an address or a url", "--rounds", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "tabswarm-peer: --relay not an address or a url: expected a relay URL (http://host:port) or a multiaddr ending in /p2p/<peer id>"
    );

    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../checkpoints/base-small-seed1.tswm");
    let out = peer(&[
        "experiment",
        "--base",
        base,
        "--configs",
        "meta",
        "--min-heading",
        "1.5",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'1.5' for '--min-heading") && stderr.contains("a cosine is from -1 (off) to 1, not 1.5"),
        "{stderr}"
    );

    // Mastered families are a curriculum's notion, and are asked on one turn in N >= 1.
    let experiment = |extra: &[&str]| {
        let mut args = vec!["experiment", "--base", base, "--configs", "solo", "--out", "/nonexistent/never-written"];
        args.extend_from_slice(extra);
        let out = peer(&args);
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = experiment(&["--revisit-mastered", "4"]);
    assert!(stderr.contains("--revisit-mastered <N>") && stderr.contains("--curriculum"), "{stderr}");
    let stderr = experiment(&["--curriculum", "--revisit-mastered", "0"]);
    assert!(stderr.contains("'0' for '--revisit-mastered <N>'") && stderr.contains("not in 1.."), "{stderr}");
    let stderr = experiment(&["--curriculum", "--curriculum-low", "0.9"]);
    assert!(
        stderr.contains("a curriculum band must have 0 <= low < high <= 1") && stderr.contains("0.9..0.8"),
        "{stderr}"
    );
}

/// Experiments run one seed at a time (to spread them over machines or hours) are summarised
/// together by `report`: every run goes into one `-runs.json`, the summary counts the seeds, and
/// a file that is not an experiment's is refused by name.
#[test]
fn report_merges_runs_of_separate_seeds_into_one_summary() {
    let dir = std::env::temp_dir().join(format!("tabswarm-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../checkpoints/base-small-seed1.tswm");
    for seed in ["1", "2"] {
        let out = dir.join(format!("seed{seed}"));
        let run = peer(&[
            "experiment",
            "--base",
            base,
            "--configs",
            "solo",
            "--peers",
            "2",
            "--rounds",
            "1",
            "--seeds",
            seed,
            "--families",
            "compare",
            "--heldout-levels",
            "1",
            "--heldout-per-level",
            "2",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let merged = dir.join("merged");
    let report = peer(&[
        "report",
        "--results",
        dir.join("seed1-runs.json").to_str().expect("utf-8"),
        "--results",
        dir.join("seed2-runs.json").to_str().expect("utf-8"),
        "--out",
        merged.to_str().expect("utf-8"),
    ]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).expect(name)).expect(name)
    };
    let runs = read("merged-runs.json");
    let seeds: Vec<u64> = runs.as_array().expect("a list").iter().map(|r| r["seed"].as_u64().expect("seed")).collect();
    assert_eq!(seeds, [1, 2]);
    let summary = read("merged.json");
    let solo = &summary["configs"][0];
    assert_eq!((solo["name"].as_str(), solo["seeds"].as_u64()), (Some("solo"), Some(2)), "{summary}");
    let finals: Vec<f64> =
        runs.as_array().expect("a list").iter().map(|r| r["heldout"][0][1].as_f64().expect("held-out")).collect();
    let mean = finals.iter().sum::<f64>() / 2.0;
    assert!((solo["final_accuracy"].as_f64().expect("accuracy") - mean).abs() < 1e-6, "{summary} {finals:?}");
    assert!(dir.join("merged.md").exists() && dir.join("merged.svg").exists());

    let not_runs = peer(&[
        "report",
        "--results",
        dir.join("merged.json").to_str().expect("utf-8"),
        "--out",
        merged.to_str().expect("utf-8"),
    ]);
    assert!(!not_runs.status.success());
    let stderr = String::from_utf8_lossy(&not_runs.stderr);
    assert!(stderr.contains("merged.json is not the runs of an experiment"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
