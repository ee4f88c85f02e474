//! A full disk, met for real (ENOSPC from a small tmpfs, not a simulated error): the relay's
//! identity, the swarm model's versions and the ledger each give a clear error, leave nothing
//! half-written behind, lose nothing stored before, and work again once there is room.
//!
//! The test re-runs itself in a mount namespace of its own (`unshare --mount`) with a 16 MiB tmpfs
//! mounted on a temporary folder, so the host's mounts are never touched. That needs root and
//! util-linux, as the CI machine has; without root it says so and checks nothing.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use alloy_primitives::Address;
use axum::body::Bytes;
use burn::tensor::Device;
use libp2p::identity::Keypair;
use tabswarm_aggregate::{ModelUpdate, OuterConfig, UpdateHeader};
use tabswarm_learn::HeldOut;
use tabswarm_model::{ModelSize, checkpoint, params};
use tabswarm_net::native;
use tabswarm_protocol::identity::BindingDomain;
use tabswarm_protocol::update::sign;
use tabswarm_relay::ledger::{BindRefusal, LEDGER_FILE, Ledger};
use tabswarm_relay::model::{MODEL_DIR, ModelSettings, ModelStore};
use tabswarm_relay::swarm::{NodeIdentity, unix_now};

/// Set in the re-run inside the namespace: where the small tmpfs is mounted.
const DISK: &str = "TABSWARM_FULL_DISK";
/// The child prints this when every check ran (a child that skipped them must not pass).
const DONE: &str = "full-disk checks: all done";

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_is_named_leaves_nothing_half_written_and_loses_nothing() {
    if let Ok(disk) = std::env::var(DISK) {
        on_a_full_disk(Path::new(&disk));
        println!("{DONE}");
        return;
    }
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (the CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk");
    fs::create_dir_all(&disk).expect("mount point");
    let script =
        r#"mount -t tmpfs -o size=16m tabswarm-full-disk "$1" && exec "$2" --exact "$3" --nocapture --test-threads=1"#;
    let output = Command::new("timeout")
        .arg("300")
        .args(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"])
        .arg(&disk)
        .arg(std::env::current_exe().expect("this test's binary"))
        .arg("a_full_disk_is_named_leaves_nothing_half_written_and_loses_nothing")
        .env(DISK, &disk)
        .output()
        .expect("re-run in a mount namespace");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && stdout.contains(DONE), "the checks on a full tmpfs failed:\n{stdout}\n{stderr}");
}

/// Fills the disk `dir` is on with one file, to the last byte it takes. Returns the file, whose
/// removal makes room again.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).expect("filler");
    let chunk = vec![0x5a_u8; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial page, byte by byte.
    while file.write(&[0x5a]).is_ok_and(|n| n == 1) {}
    path
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file of `dir` with what it holds.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    listing(dir).into_iter().map(|name| (name.clone(), fs::read(dir.join(&name)).expect("read"))).collect()
}

fn on_a_full_disk(disk: &Path) {
    identity(disk);
    model(disk);
    ledger(disk);
}

/// A relay starting on a full disk for the first time cannot save its key: the error names the
/// file and says what to do, and no half key is left to be read at the next start. Once made,
/// the identity loads on a full disk (it is only read).
fn identity(disk: &Path) {
    let data = disk.join("identity");
    fs::create_dir_all(&data).expect("data folder");
    let filler = fill(disk);
    let err = NodeIdentity::load_or_create(&data).expect_err("no room for the key").to_string();
    assert!(err.contains("peer-key") && err.contains("No space left on device"), "{err}");
    assert!(err.contains("the disk is full: free some space"), "{err}");
    assert_eq!(listing(&data), Vec::<String>::new(), "a half-written key or its temporary file was left");

    fs::remove_file(filler).expect("room again");
    let made = NodeIdentity::load_or_create(&data).expect("made with room");
    let filler = fill(disk);
    let loaded = NodeIdentity::load_or_create(&data).expect("loaded on a full disk");
    assert_eq!(loaded.keypair.public(), made.keypair.public());
    assert_eq!(loaded.certificate.fingerprint(), made.certificate.fingerprint());
    fs::remove_file(filler).expect("room again");
}

fn tiny_base() -> Bytes {
    let device = Device::flex();
    let config = ModelSize::Tiny.config();
    let model = config.init(&device).expect("model");
    Bytes::from(checkpoint::save(&model, &config, 0).expect("save"))
}

fn update(key: &Keypair, base: &str, len: usize) -> Vec<u8> {
    let delta: Vec<f32> = (0..len).map(|i| 0.001 + 0.0001 * (i % 7) as f32).collect();
    let header = UpdateHeader { base: base.into(), peer: key.public().to_peer_id().to_string(), rounds: 10, params: 0 };
    sign(&ModelUpdate::compress(header, &delta).expect("compress"), key).expect("sign")
}

/// Makes the next version from two peers' updates to the current one.
fn next_version(store: &ModelStore, len: usize) {
    let current = store.info();
    for _ in 0..2 {
        store.submit(&update(&Keypair::generate_ed25519(), &current.hash, len), |_| true).expect("accepted");
    }
    assert_eq!(store.info().number, current.number + 1, "a version was made");
}

/// A version made while the disk is full is served from memory; the disk keeps the last whole
/// version (no partial files, no temporary ones) and a restart resumes there. The folder holds
/// only what is served: older versions' files go as new ones are written.
fn model(disk: &Path) {
    let data = disk.join("model-relay");
    let settings = || ModelSettings {
        min_updates: 2,
        heldout: HeldOut { levels: vec![1], per_level: 2 },
        outer: OuterConfig { accept_unbound: true, ..OuterConfig::default() },
        keep: 3,
        ..ModelSettings::default()
    };
    let base = tiny_base();
    let len = {
        let (model, _) = checkpoint::load(&base, None, &Device::flex()).expect("load");
        futures::executor::block_on(params::flatten(&model)).expect("flatten").len()
    };
    let store = ModelStore::open(&data, base.clone(), settings()).expect("open");
    let dir = data.join(MODEL_DIR);
    let mut made = vec![store.info().hash];
    for _ in 0..4 {
        next_version(&store, len);
        made.push(store.info().hash);
    }
    // keep = 3: the newest three versions are served and only they are on disk, with the outer
    // optimizer's velocity of the latest only.
    let expected = |latest: &str, older: &[&String]| {
        let mut names = vec![format!("{latest}.json"), format!("{latest}.tswm"), format!("{latest}.velocity")];
        names.extend(older.iter().flat_map(|h| [format!("{h}.json"), format!("{h}.tswm")]));
        names.push("latest".to_owned());
        names.sort();
        names
    };
    let v4 = &made[4];
    assert_eq!(listing(&dir), expected(v4, &[&made[3], &made[2]]), "the model folder after 4 versions, keeping 3");
    assert_eq!(store.checkpoint(&made[1]), None, "a version past `keep` is no longer served");
    assert!(store.checkpoint(&made[0]).is_some(), "the base is always served");
    let stored = contents(&dir);

    let filler = fill(disk);
    next_version(&store, len);
    let v5 = store.info();
    assert!(store.checkpoint(&v5.hash).is_some(), "the unwritten version is served from memory");
    assert!(contents(&dir) == stored, "the folder changed on a full disk: {:?}", listing(&dir));
    drop(store);

    let store = ModelStore::open(&data, base.clone(), settings()).expect("reopens on a full disk");
    assert_eq!(store.info().hash, *v4, "resumed at the last version written whole");
    assert_eq!(
        store.info().recent,
        made[2..].iter().rev().cloned().collect::<Vec<_>>(),
        "served as before the restart"
    );
    assert!(store.checkpoint(&made[2]).is_some(), "older versions are served again after the restart");
    fs::remove_file(filler).expect("room again");
    next_version(&store, len);
    let v5 = store.info().hash;
    assert_eq!(listing(&dir), expected(&v5, &[v4, &made[3]]), "written again once there is room");
}

/// SQLite on a real full disk: a binding is refused as `disk_full`, the ledger keeps every
/// binding it had, passes its integrity check, and stores again once there is room.
fn ledger(disk: &Path) {
    let path = disk.join("ledger-relay").join(LEDGER_FILE);
    fs::create_dir_all(path.parent().expect("folder")).expect("folder");
    let domain = BindingDomain {
        chain_id: 31337,
        verifying_contract: Address::ZERO,
        swarm_id: "tabswarm-test".into(),
        relay_domain: "127.0.0.1:8080".into(),
    };
    let wallet = k256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("wallet");
    let now = unix_now();
    let bind = |ledger: &Ledger, peer: &Keypair| {
        ledger.bind(&native::bind_with_key(&domain, &wallet, peer, 3600).expect("sign"), &domain, now)
    };
    let id = |peer: &Keypair| peer.public().to_peer_id().to_string();
    let peers: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let ledger = Ledger::open(&path).expect("open");
    bind(&ledger, &peers[0]).expect("bound with room");
    let filler = fill(disk);
    // SQLite may still find room in pages it holds; a few more bindings at most fit.
    let mut bound = 1;
    let refusal = loop {
        match bind(&ledger, &peers[bound]) {
            Ok(_) if bound + 1 < peers.len() => bound += 1,
            Ok(_) => panic!("{} bindings stored on a full disk", bound + 1),
            Err(e) => break e,
        }
    };
    assert_eq!(refusal, BindRefusal::DiskFull, "{refusal}");
    for peer in &peers[..bound] {
        assert_eq!(
            ledger.address_of(&id(peer), now).ok(),
            Some(Address::from_private_key(&wallet)),
            "a stored binding"
        );
    }
    drop(ledger);
    fs::remove_file(filler).expect("room again");
    let ledger = Ledger::open(&path).expect("reopen");
    assert!(ledger.address_of(&id(&peers[bound]), now).is_err(), "the refused binding was not half-stored");
    bind(&ledger, &peers[bound]).expect("stored again with room");
    for peer in &peers[..=bound] {
        assert_eq!(ledger.address_of(&id(peer), now).ok(), Some(Address::from_private_key(&wallet)));
    }
    drop(ledger);
    let sqlite = rusqlite::Connection::open(&path).expect("open the file");
    let check: String = sqlite.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
    assert_eq!(check, "ok");
}
