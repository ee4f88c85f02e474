use alloy_primitives::B256;
use libp2p::identity::Keypair;
use tabswarm_protocol::identity::sign_with_key;
use tabswarm_protocol::rollout::{RolloutGroup, score_group};
use tabswarm_protocol::tasks::{Family, QuestionId, generate};

use super::*;

const NOW: u64 = 1_800_000_000;

pub(crate) fn domain() -> BindingDomain {
    BindingDomain {
        chain_id: 31337,
        verifying_contract: Address::ZERO,
        swarm_id: "tabswarm-test".into(),
        relay_domain: "127.0.0.1:8080".into(),
    }
}

pub(crate) fn wallet(seed: u8) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("key")
}

pub(crate) fn bind_as(wallet: &k256::ecdsa::SigningKey, peer: &Keypair, nonce: u8, now: u64) -> SignedBinding {
    let domain = domain();
    let binding = domain.binding(&peer.public().to_peer_id().to_string(), B256::repeat_byte(nonce), now, 3600);
    sign_with_key(binding, &domain, wallet, peer).expect("sign")
}

/// A group of `peer` with the right answer and a non-number: verified rewards 1.1 and 0.0.
pub(crate) fn scored(peer: &str, seed: u64) -> ScoredGroup {
    let answer = generate(Family::Add, 2, seed).expect("question").answer;
    score_group(RolloutGroup {
        question: QuestionId::new(Family::Add, 2, seed),
        peer: peer.to_owned(),
        policy_version: 0,
        completions: vec![answer, "x".into()],
        rewards: Vec::new(),
    })
    .expect("valid")
}

#[test]
fn a_binding_is_stored_once_and_a_reposting_changes_nothing() {
    let ledger = Ledger::in_memory().expect("ledger");
    let (alice, peer) = (wallet(1), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    let signed = bind_as(&alice, &peer, 1, NOW);
    let address = Address::from_private_key(&alice);
    assert_eq!(ledger.bind(&signed, &domain(), NOW), Ok(Bound::New(address)));
    assert_eq!(ledger.bind(&signed, &domain(), NOW + 5), Ok(Bound::Known(address)));
    assert_eq!(ledger.address_of(&id, NOW), Ok(address));
    // Renewal by the same wallet with a fresh nonce extends it.
    let renewed = bind_as(&alice, &peer, 2, NOW + 1000);
    assert_eq!(ledger.bind(&renewed, &domain(), NOW + 1000), Ok(Bound::New(address)));
    assert_eq!(ledger.address_of(&id, NOW + 4000), Ok(address));
    assert_eq!(ledger.counts().expect("counts").bindings, 1);
}

#[test]
fn a_replayed_nonce_is_refused_and_nothing_changes() {
    let ledger = Ledger::in_memory().expect("ledger");
    let alice = wallet(1);
    let (first, second) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    ledger.bind(&bind_as(&alice, &first, 7, NOW), &domain(), NOW).expect("first");
    let replay = bind_as(&alice, &second, 7, NOW);
    let err = ledger.bind(&replay, &domain(), NOW).expect_err("replayed nonce");
    assert_eq!(err.kind(), "nonce_reused");
    assert!(err.to_string().contains("already used"), "{err}");
    assert_eq!(
        ledger.address_of(&second.public().to_peer_id().to_string(), NOW),
        Err(Unattributed::Unbound(second.public().to_peer_id().to_string()))
    );
    assert_eq!(ledger.counts().expect("counts").bindings, 1);
}

#[test]
fn a_peer_bound_to_one_wallet_cannot_be_claimed_by_another_until_it_expires() {
    let ledger = Ledger::in_memory().expect("ledger");
    let (alice, mallory, peer) = (wallet(1), wallet(2), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("alice");
    let err = ledger.bind(&bind_as(&mallory, &peer, 2, NOW), &domain(), NOW).expect_err("taken");
    assert_eq!(
        err,
        BindRefusal::PeerTaken {
            peer_id: id.clone(),
            bound: Address::from_private_key(&alice),
            claimed: Address::from_private_key(&mallory),
            expires_at: NOW + 3600,
        }
    );
    assert_eq!(ledger.address_of(&id, NOW), Ok(Address::from_private_key(&alice)));
    // Once alice's binding lapsed, the key's holder may bind it elsewhere.
    let later = NOW + 3601;
    assert_eq!(
        ledger.bind(&bind_as(&mallory, &peer, 3, later), &domain(), later),
        Ok(Bound::New(Address::from_private_key(&mallory)))
    );
}

#[test]
fn an_invalid_binding_is_refused_with_its_reason_and_not_stored() {
    let ledger = Ledger::in_memory().expect("ledger");
    let peer = Keypair::generate_ed25519();
    let other_chain = BindingDomain { chain_id: 1, ..domain() };
    let binding = other_chain.binding(&peer.public().to_peer_id().to_string(), B256::ZERO, NOW, 60);
    let signed = sign_with_key(binding, &other_chain, &wallet(1), &peer).expect("sign");
    let err = ledger.bind(&signed, &domain(), NOW).expect_err("wrong chain");
    assert_eq!(err, BindRefusal::Invalid(BindingError::WrongChain { got: 1, expected: 31337 }));
    let counts = ledger.counts().expect("counts");
    assert_eq!(counts.bindings, 0);
    assert_eq!(counts.contributions, 0);
    // Its nonce is not burnt either: the same wallet can still use it on the right chain.
    let good = bind_as(&wallet(1), &peer, 0, NOW);
    assert!(ledger.bind(&good, &domain(), NOW).is_ok());
}

#[test]
fn contributions_count_only_for_bound_peers_and_with_verified_rewards() {
    let ledger = Ledger::in_memory().expect("ledger");
    let (alice, peer, stranger) = (wallet(1), Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    let stranger_id = stranger.public().to_peer_id().to_string();
    ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("bind");
    let address = Address::from_private_key(&alice);
    assert_eq!(ledger.record(5, &id, &[scored(&id, 1), scored(&id, 2)], NOW), Ok(Credited { address, groups: 2 }));
    assert_eq!(ledger.record(6, &id, &[scored(&id, 3)], NOW + 60), Ok(Credited { address, groups: 1 }));
    let err = ledger.record(6, &stranger_id, &[scored(&stranger_id, 4)], NOW).expect_err("unbound");
    assert_eq!(err.kind(), "unbound_peer");
    let err = ledger.record(7, &id, &[scored(&id, 5)], NOW + 3600).expect_err("expired");
    assert_eq!(err, Unattributed::Expired { peer_id: id.clone(), expires_at: NOW + 3600 });

    let board = ledger.leaderboard().expect("leaderboard");
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].address, address.to_checksum(None));
    // Each group: the right answer (1.1) and a non-number (0.0), as the relay scores them.
    assert!((board[0].reward - 3.0 * f64::from(1.1f32)).abs() < 1e-9, "{}", board[0].reward);
    assert_eq!((board[0].rollouts, board[0].peers, board[0].last_seen), (6, 1, NOW + 60));
    let totals = ledger.round_totals(5).expect("totals");
    assert_eq!((totals.len(), totals[0].address, totals[0].rollouts), (1, address, 4));
    assert_eq!(ledger.unsubmitted_rounds(7).expect("rounds"), vec![5, 6]);
    ledger.mark_round_submitted(5, "0xabc", NOW).expect("mark");
    assert_eq!(ledger.unsubmitted_rounds(7).expect("rounds"), vec![6]);

    let record = ledger.peer(&id).expect("query").expect("known");
    assert_eq!(record.address.as_deref(), Some(address.to_checksum(None).as_str()));
    assert_eq!((record.rounds.len(), record.rounds[0].round, record.rollouts), (2, 6, 6));
    assert_eq!(ledger.peer("12D3KooWnobody").expect("query"), None);
}

/// A peer credited in more rounds than `/api/peer/<id>` lists still sees its whole total (it
/// summed only the 50 rounds listed: a contributor of a day showed the last 50 rounds' worth).
#[test]
fn a_peer_s_totals_count_every_round_not_only_the_rounds_listed() {
    let ledger = Ledger::in_memory().expect("ledger");
    let (alice, peer) = (wallet(1), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("bind");
    for round in 0..60 {
        ledger.record(round, &id, &[scored(&id, round)], NOW).expect("credited");
    }
    let record = ledger.peer(&id).expect("query").expect("known");
    assert_eq!((record.rounds.len(), record.rounds[0].round, record.rounds[49].round), (50, 59, 10));
    assert_eq!(record.rollouts, 120, "two rollouts a group, one group a round, 60 rounds");
    assert!((record.reward - 60.0 * f64::from(1.1f32)).abs() < 1e-9, "{}", record.reward);
    assert_eq!(record.rollouts, ledger.leaderboard().expect("board")[0].rollouts, "as the leaderboard counts");
}

#[test]
fn rejections_are_listed_per_peer_newest_first() {
    let ledger = Ledger::in_memory().expect("ledger");
    ledger.reject(Some("p"), "wrong_chain", "binding is for chain 1", NOW);
    ledger.reject(Some("p"), "unbound_peer", "peer p is not bound", NOW + 1);
    ledger.reject(None, "malformed", "not json", NOW + 2);
    let record = ledger.peer("p").expect("query").expect("known");
    let kinds: Vec<&str> = record.rejections.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["unbound_peer", "wrong_chain"]);
    assert_eq!(record.address, None);
    assert_eq!(ledger.counts().expect("counts").rejections, 3);
}

#[test]
fn the_ledger_file_is_wal_migrated_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(LEDGER_FILE);
    let (alice, peer) = (wallet(1), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    {
        let ledger = Ledger::open(&path).expect("open");
        assert_eq!(ledger.schema_version(), MIGRATIONS.len() as i64);
        ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("bind");
        ledger.record(1, &id, &[scored(&id, 1)], NOW).expect("record");
    }
    let ledger = Ledger::open(&path).expect("reopen");
    let mode: String = ledger.lock().query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
    assert_eq!(mode, "wal");
    assert_eq!(ledger.address_of(&id, NOW), Ok(Address::from_private_key(&alice)));
    assert_eq!(ledger.leaderboard().expect("board")[0].rollouts, 2);
}

/// A group re-published after the relay restarted (its gossip layer has forgotten it) is not
/// credited again, alone or beside new groups; the ledger keeps only the newest marks.
#[test]
fn a_group_credited_once_is_never_credited_again_across_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(LEDGER_FILE);
    let (alice, peer) = (wallet(1), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    let address = Address::from_private_key(&alice);
    {
        let ledger = Ledger::open(&path).expect("open");
        ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("bind");
        assert_eq!(ledger.record(1, &id, &[scored(&id, 1), scored(&id, 2)], NOW), Ok(Credited { address, groups: 2 }));
        assert_eq!(ledger.record(1, &id, &[scored(&id, 1)], NOW), Ok(Credited { address, groups: 0 }));
    }
    let ledger = Ledger::open(&path).expect("reopen");
    // The same groups in a later round, after the restart: nothing credited, nothing written.
    assert_eq!(
        ledger.record(2, &id, &[scored(&id, 2), scored(&id, 1)], NOW + 700),
        Ok(Credited { address, groups: 0 })
    );
    // Beside a new one: only the new one counts.
    assert_eq!(
        ledger.record(2, &id, &[scored(&id, 1), scored(&id, 3)], NOW + 701),
        Ok(Credited { address, groups: 1 })
    );
    let board = ledger.leaderboard().expect("board");
    assert_eq!(board[0].rollouts, 6, "three groups of two rollouts");
    let rounds: Vec<u64> = ledger.peer(&id).expect("query").expect("known").rounds.iter().map(|r| r.round).collect();
    assert_eq!(rounds, [2, 1]);
    // Another peer's group on the same question is its own work.
    let (bob, other) = (wallet(2), Keypair::generate_ed25519());
    let other_id = other.public().to_peer_id().to_string();
    ledger.bind(&bind_as(&bob, &other, 1, NOW), &domain(), NOW).expect("bind");
    assert_eq!(ledger.record(2, &other_id, &[scored(&other_id, 1)], NOW + 702).map(|c| c.groups), Ok(1));
}

/// A full disk, as SQLite meets it (SQLITE_FULL: here the file may not grow past its size):
/// a new binding is refused with `disk_full`, nothing stored before is lost, the file stays
/// sound, and once there is room again (a reopen lifts the cap) bindings are stored again.
#[test]
fn a_full_disk_refuses_new_bindings_keeps_the_stored_ones_and_corrupts_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(LEDGER_FILE);
    let alice = wallet(1);
    let peers: Vec<Keypair> = (0..400).map(|_| Keypair::generate_ed25519()).collect();
    let id = |p: &Keypair| p.public().to_peer_id().to_string();
    let stored = {
        let ledger = Ledger::open(&path).expect("open");
        ledger.bind(&bind_as(&alice, &peers[0], 0, NOW), &domain(), NOW).expect("bind");
        ledger.record(1, &id(&peers[0]), &[scored(&id(&peers[0]), 1)], NOW).expect("record");
        ledger.fill_the_disk();
        let mut stored = 1;
        let refusal = loop {
            let peer = &peers[stored];
            match ledger.bind(&bind_as(&alice, peer, (stored % 250) as u8 + 1, NOW), &domain(), NOW) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
            assert!(stored < peers.len(), "the capped file never filled");
        };
        assert_eq!(refusal, BindRefusal::DiskFull);
        assert_eq!(refusal.kind(), "disk_full");
        assert!(refusal.to_string().contains("disk is full"), "{refusal}");
        // Reads go on while the disk is full.
        assert_eq!(ledger.address_of(&id(&peers[0]), NOW), Ok(Address::from_private_key(&alice)));
        stored
    };
    let ledger = Ledger::open(&path).expect("reopen");
    let check: String = ledger.lock().query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    for peer in &peers[..stored] {
        assert_eq!(ledger.address_of(&id(peer), NOW), Ok(Address::from_private_key(&alice)), "a stored binding");
    }
    assert!(ledger.address_of(&id(&peers[stored]), NOW).is_err(), "the refused binding was not half-stored");
    assert_eq!(ledger.leaderboard().expect("board")[0].rollouts, 2);
    let retry = bind_as(&alice, &peers[stored], 251, NOW);
    assert!(matches!(ledger.bind(&retry, &domain(), NOW), Ok(Bound::New(_))), "with room again it is stored");
}

/// A data folder that turns read-only under a running relay (a file system remounted read-only
/// after errors; SQLite's `SQLITE_READONLY`): bindings and credits are refused naming it, nothing
/// stored before is lost, and once it is writable again both are stored.
#[test]
fn a_read_only_ledger_refuses_new_writes_naming_it_and_keeps_what_it_had() {
    let ledger = Ledger::in_memory().expect("ledger");
    let (alice, peer, late) = (wallet(1), Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let id = peer.public().to_peer_id().to_string();
    ledger.bind(&bind_as(&alice, &peer, 1, NOW), &domain(), NOW).expect("bind");
    ledger.record(1, &id, &[scored(&id, 1)], NOW).expect("record");

    ledger.make_read_only(true);
    let refusal = ledger.bind(&bind_as(&alice, &late, 2, NOW), &domain(), NOW).expect_err("read-only");
    assert_eq!(refusal, BindRefusal::ReadOnly);
    assert_eq!(refusal.kind(), "read_only");
    assert!(refusal.to_string().contains("data folder is read-only"), "{refusal}");
    let refusal = ledger.record(1, &id, &[scored(&id, 2)], NOW).expect_err("read-only");
    assert_eq!((refusal.kind(), refusal.to_string().contains("read-only")), ("read_only", true), "{refusal}");
    assert_eq!(ledger.record_update("v1", &id, NOW).map_err(|e| e.kind()), Err("read_only"));
    // What was there is there.
    assert_eq!(ledger.address_of(&id, NOW), Ok(Address::from_private_key(&alice)));
    assert_eq!(ledger.leaderboard().expect("board")[0].rollouts, 2);

    ledger.make_read_only(false);
    assert!(matches!(ledger.bind(&bind_as(&alice, &late, 2, NOW), &domain(), NOW), Ok(Bound::New(_))));
    assert_eq!(ledger.record(1, &id, &[scored(&id, 2)], NOW).map(|c| c.groups), Ok(1), "not marked while refused");
}

#[test]
fn a_ledger_from_a_newer_relay_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(LEDGER_FILE);
    {
        let ledger = Ledger::open(&path).expect("open");
        ledger.reject(None, "x", "kept", NOW);
        ledger.lock().execute_batch("PRAGMA user_version = 99").expect("bump");
    }
    let err = Ledger::open(&path).expect_err("too new").to_string();
    assert!(err.contains("written by a newer relay"), "{err}");
    assert!(err.contains(LEDGER_FILE), "{err}");
    let conn = Connection::open(&path).expect("raw");
    let kept: u64 = conn.query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0)).expect("count");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!((kept, version), (1, 99));
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_not_overwritten() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(LEDGER_FILE);
    std::fs::write(&path, b"this is not a database, and it is precious").expect("write");
    let err = Ledger::open(&path).expect_err("refused").to_string();
    assert!(err.contains("not a database"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), b"this is not a database, and it is precious");
}
