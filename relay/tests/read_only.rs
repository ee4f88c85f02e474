//! A relay given a read-only data folder (here a read-only bind mount of it, in a mount namespace
//! of its own) stops at start with one line naming the folder and what to do, and the ledger
//! already there is left as it was.
//!
//! Needs root and `unshare`/`mount` (util-linux), as the CI machine has: the tests run as root,
//! which writes through file modes, so only a read-only mount shows what an operator meets. Without
//! root it says so and checks nothing.

use std::process::Command;

use tabswarm_relay::ledger::{LEDGER_FILE, Ledger};

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_read_only_data_folder_is_named_at_start_and_its_ledger_left_as_it_was() {
    if !is_root() {
        eprintln!("skipped: a read-only bind mount needs root (the CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("site");
    std::fs::write(site.join("index.html"), "<!doctype html>").expect("index");
    {
        let ledger = Ledger::open(&{
            std::fs::create_dir_all(&data).expect("data");
            data.join(LEDGER_FILE)
        })
        .expect("a ledger");
        ledger.reject(Some("a-peer"), "malformed", "kept across the read-only start", 1);
    }
    let relay = env!("CARGO_BIN_EXE_tabswarm-relay");
    let script = r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" --data-dir "$1" --assets "$3" --port 0 --webrtc-port 0 --p2p-port 0"#;
    let output = Command::new("timeout")
        .arg("60")
        .args(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"])
        .arg(&data)
        .arg(relay)
        .arg(&site)
        .output()
        .expect("run the relay in a mount namespace");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(124), "the relay started on a read-only folder: {stderr}");
    assert!(!output.status.success(), "the relay must refuse to start: {stderr}");
    let expected = format!("error: data folder {}: it cannot be written", data.display());
    assert!(stderr.contains(&expected), "expected {expected:?} in: {stderr}");
    assert!(stderr.contains("Read-only file system") && stderr.contains("give it a writable --data-dir"), "{stderr}");

    // Outside the namespace the folder is writable as before, and the ledger holds what it held.
    let ledger = Ledger::open(&data.join(LEDGER_FILE)).expect("the ledger opens");
    let record = ledger.peer("a-peer").expect("query").expect("kept");
    assert_eq!(record.rejections[0].reason, "kept across the read-only start");
}
