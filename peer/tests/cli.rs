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
}
