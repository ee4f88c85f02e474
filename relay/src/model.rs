//! The swarm model at this relay: one model every peer starts from and feeds (`tabswarm-aggregate`
//! does the arithmetic; this module keeps it, serves it and writes it down).
//!
//! - Peers post signed 8-bit updates (`POST /api/model/updates`); each is checked (signature,
//!   version, shape, values, binding, one per peer per version, not graylisted) and kept.
//! - With [`ModelSettings::min_updates`] updates waiting, or the oldest waiting for
//!   [`ModelSettings::max_wait`], the relay takes the outer step: the next version.
//! - Each version is written to `<data>/model/` atomically (temporary file, fsync, rename) — its
//!   checkpoint (`<hash>.tswm`, a normal checkpoint a tab loads like the base), the outer
//!   optimiser's velocity (`<hash>.velocity`) and its record (`<hash>.json`) — and then `latest`
//!   names it. A restarted relay continues from `latest`.
//! - The relay evaluates every version itself on held-out questions no peer trains on, on its
//!   CPU, off the async threads; `GET /api/model` reports it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use tabswarm_aggregate::{Lineage, ModelUpdate, OuterConfig, Refusal, SwarmModel};
use tabswarm_learn::{HeldOut, heldout_accuracy};
use tabswarm_model::{Model, ModelConfig, checkpoint, params};
use tabswarm_protocol::api::ModelInfo;
use tabswarm_protocol::tasks::Family;
use tabswarm_protocol::update::{UpdateError, is_version_hash, params_hash, verify_signed};

use crate::error::StartError;

/// The folder under the relay's data folder that holds the versions.
pub const MODEL_DIR: &str = "model";
/// Refusals of a peer's updates (bad values, outliers, wrong shape…) after which its updates are
/// refused as `graylisted` for [`GRAYLIST_FOR`].
pub const MAX_STRIKES: u32 = 3;
pub const GRAYLIST_FOR: Duration = Duration::from_secs(3600);

/// How the relay runs the swarm model.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Updates for the current version that trigger the outer step.
    pub min_updates: usize,
    /// A step is taken anyway once the oldest waiting update is this old.
    pub max_wait: Duration,
    /// Rounds a peer trains between updates (told to peers in `/api/model`).
    pub sync_every: u32,
    pub outer: OuterConfig,
    pub heldout: HeldOut,
    /// Versions kept in memory and served, newest first.
    pub keep: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            min_updates: 2,
            max_wait: Duration::from_secs(300),
            sync_every: 10,
            outer: OuterConfig::default(),
            heldout: HeldOut::default(),
            keep: 8,
        }
    }
}

/// What `<hash>.json` records of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct VersionRecord {
    lineage: Lineage,
    /// The version 0 (the base) this lineage starts from.
    root: String,
    accuracy: BTreeMap<Family, f32>,
}

#[derive(Debug, Clone)]
struct Served {
    record: VersionRecord,
    bytes: Bytes,
}

#[derive(Debug)]
struct Inner {
    swarm: SwarmModel,
    served: VecDeque<Served>,
    first_pending: Option<Instant>,
    stepping: bool,
    strikes: HashMap<String, (u32, Option<Instant>)>,
    refused: BTreeMap<String, u64>,
}

/// The swarm model, shared by the HTTP handlers and the step task.
#[derive(Debug, Clone)]
pub struct ModelStore {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
    base_bytes: Bytes,
    /// The base's model, decoded once: each new version is its shape with the version's parameters.
    template: Arc<Model>,
    config: ModelConfig,
    root: String,
    settings: Arc<ModelSettings>,
    /// The newest version made here since start (for announcing it).
    made: Arc<tokio::sync::watch::Sender<Option<Lineage>>>,
}

/// Why an update posted here was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateRefusal {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("peer {peer} sent too many refused updates; its updates are refused until {minutes} min from now")]
    Graylisted { peer: String, minutes: u64 },
}

/// The one name [`UpdateRefusal::kind`] gives that is not a [`tabswarm_aggregate::REFUSAL_KINDS`] one.
pub const GRAYLISTED: &str = "graylisted";

impl UpdateRefusal {
    /// One of [`tabswarm_aggregate::REFUSAL_KINDS`] or [`GRAYLISTED`].
    pub fn kind(&self) -> &'static str {
        match self {
            UpdateRefusal::Refused(r) => r.kind(),
            UpdateRefusal::Graylisted { .. } => GRAYLISTED,
        }
    }
}

fn start_error(dir: &Path, reason: impl std::fmt::Display) -> StartError {
    StartError::Model(format!("{}: {reason}", dir.display()))
}

impl ModelStore {
    /// The swarm model of `base` (a verified checkpoint file), continuing from the latest version
    /// stored in `data_dir/model` when there is one.
    pub fn open(data_dir: &Path, base: Bytes, settings: ModelSettings) -> Result<Self, StartError> {
        let dir = data_dir.join(MODEL_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| start_error(&dir, format!("cannot create the folder: {e}")))?;
        let cpu = Device::flex();
        let (base_model, header) =
            checkpoint::load(&base, None, &cpu).map_err(|e| start_error(&dir, format!("the base checkpoint: {e}")))?;
        let base_params = futures::executor::block_on(params::flatten(&base_model))
            .map_err(|e| start_error(&dir, format!("reading the base's parameters: {e}")))?;
        let root = params_hash(&base_params);
        let base_served = Served {
            record: VersionRecord {
                lineage: Lineage { hash: root.clone(), number: 0, parent: None, contributors: vec![], updates: 0 },
                root: root.clone(),
                accuracy: BTreeMap::new(),
            },
            bytes: base.clone(),
        };
        let latest = dir.join("latest");
        let (swarm, served) = match std::fs::read_to_string(&latest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (SwarmModel::new(base_params, settings.outer.clone()), VecDeque::from([base_served]))
            }
            Err(e) => return Err(start_error(&latest, format!("cannot read: {e}"))),
            Ok(hash) => {
                let hash = hash.trim().to_owned();
                let stored = read_version(&dir, &hash, &header.config)?;
                if stored.record.root != root {
                    return Err(start_error(
                        &dir,
                        format!(
                            "it holds versions of another base ({}); start with that base, or move the folder away to start over",
                            stored.record.root
                        ),
                    ));
                }
                let swarm = SwarmModel::resume(
                    stored.params,
                    stored.velocity,
                    stored.record.lineage.clone(),
                    settings.outer.clone(),
                );
                tracing::info!(version = stored.record.lineage.number, %hash, "swarm model resumed from disk");
                let mut served = VecDeque::from([Served { record: stored.record, bytes: stored.bytes }]);
                // The versions before it that are still on disk, so peers catching up after the
                // restart find them; one that is missing or damaged ends the chain (only the
                // latest is needed to go on). The same `keep` newest as before the restart, the
                // base among them while it is one of them.
                while served.len() < settings.keep {
                    let parent = served.back().and_then(|s| s.record.lineage.parent.clone());
                    match parent {
                        Some(parent) if parent != root => match read_served(&dir, &parent, &header.config) {
                            Ok((older, _)) => served.push_back(older),
                            Err(e) => {
                                tracing::warn!("an older swarm model version is not served after the restart: {e}");
                                break;
                            }
                        },
                        _ => break,
                    }
                }
                if served.len() < settings.keep {
                    served.push_back(base_served);
                }
                (swarm, served)
            }
        };
        {
            let keep: Vec<&str> = served.iter().map(|s| s.record.lineage.hash.as_str()).collect();
            let latest = served.front().map_or(root.as_str(), |s| s.record.lineage.hash.as_str());
            let removed = prune(&dir, &keep, latest);
            if removed > 0 {
                tracing::info!(folder = %dir.display(), removed, "deleted model files no longer served");
            }
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                swarm,
                served,
                first_pending: None,
                stepping: false,
                strikes: HashMap::new(),
                refused: BTreeMap::new(),
            })),
            dir,
            base_bytes: base,
            template: Arc::new(base_model),
            config: header.config,
            root,
            settings: Arc::new(settings),
            made: Arc::new(tokio::sync::watch::Sender::new(None)),
        })
    }

    /// Each version this store makes, as it is served (the value is the newest; a slow reader
    /// sees the latest, not every one).
    pub fn versions(&self) -> tokio::sync::watch::Receiver<Option<Lineage>> {
        self.made.subscribe()
    }

    /// The parameter hash of the base this lineage grows from.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current version, as `GET /api/model` tells it.
    pub fn info(&self) -> ModelInfo {
        let inner = self.lock();
        let current = inner.served.front().expect("the base is always served");
        let lineage = &current.record.lineage;
        ModelInfo {
            hash: lineage.hash.clone(),
            number: lineage.number,
            parent: lineage.parent.clone(),
            contributors: lineage.contributors.clone(),
            updates: lineage.updates,
            url: format!("/api/checkpoint/{}", lineage.hash),
            bytes: current.bytes.len(),
            accuracy: current.record.accuracy.clone(),
            heldout: format!(
                "{} questions per family at each of levels {:?}, seeds the peers never train on, answered greedily",
                self.settings.heldout.per_level, self.settings.heldout.levels
            ),
            sync_every: self.settings.sync_every,
            min_updates: self.settings.min_updates,
            pending: inner.swarm.pending(),
            recent: inner.served.iter().map(|s| s.record.lineage.hash.clone()).collect(),
        }
    }

    /// The checkpoint of a version this relay still serves.
    pub fn checkpoint(&self, hash: &str) -> Option<Bytes> {
        if hash == self.root {
            return Some(self.base_bytes.clone());
        }
        let inner = self.lock();
        inner.served.iter().find(|s| s.record.lineage.hash == hash).map(|s| s.bytes.clone())
    }

    /// Refusals since start, by reason (for `/api/swarm`).
    pub fn refused(&self) -> BTreeMap<String, u64> {
        let inner = self.lock();
        let mut all = inner.swarm.refused().clone();
        for (k, n) in &inner.refused {
            *all.entry(k.clone()).or_default() += n;
        }
        all
    }

    /// Checks a signed update (`bound`: whether its peer is bound to a wallet now) and keeps it;
    /// returns the version it is for, how many updates wait, and the sender. Starts the outer step when enough
    /// are waiting.
    pub fn submit(
        &self,
        bytes: &[u8],
        bound: impl FnOnce(&str) -> bool,
    ) -> Result<(String, usize, String), (UpdateRefusal, Option<String>)> {
        let update = match verify_signed(bytes) {
            Ok(update) => update,
            Err(e) => return Err((self.refuse_unattributed(e), None)),
        };
        let peer = update.header.peer.clone();
        self.submit_verified(&update, bound(&peer)).map_err(|e| (e, Some(peer)))
    }

    fn submit_verified(&self, update: &ModelUpdate, is_bound: bool) -> Result<(String, usize, String), UpdateRefusal> {
        let peer = update.header.peer.clone();
        let mut inner = self.lock();
        if let Some((strikes, Some(since))) = inner.strikes.get(&peer)
            && *strikes >= MAX_STRIKES
        {
            let left = GRAYLIST_FOR.saturating_sub(since.elapsed());
            if left > Duration::ZERO {
                *inner.refused.entry(GRAYLISTED.into()).or_default() += 1;
                return Err(UpdateRefusal::Graylisted { peer, minutes: left.as_secs().div_ceil(60) });
            }
            inner.strikes.remove(&peer);
        }
        match inner.swarm.submit(update, is_bound) {
            Ok(()) => {
                inner.first_pending.get_or_insert_with(Instant::now);
                let answer = (update.header.base.clone(), inner.swarm.pending(), peer);
                let ready = inner.swarm.pending() >= self.settings.min_updates;
                drop(inner);
                if ready {
                    self.spawn_step();
                }
                Ok(answer)
            }
            Err(refusal) => {
                if strikes_for(&refusal) {
                    strike(&mut inner, &peer);
                }
                Err(refusal.into())
            }
        }
    }

    fn refuse_unattributed(&self, e: UpdateError) -> UpdateRefusal {
        let refusal = Refusal::Malformed(e);
        *self.lock().refused.entry(refusal.kind().into()).or_default() += 1;
        refusal.into()
    }

    /// Steps now if updates have waited [`ModelSettings::max_wait`] (called by a timer).
    pub fn tick(&self) {
        let due = {
            let inner = self.lock();
            inner.swarm.pending() > 0 && inner.first_pending.is_some_and(|t| t.elapsed() >= self.settings.max_wait)
        };
        if due {
            self.spawn_step();
        }
    }

    /// Runs [`tick`](Self::tick) every few seconds until the relay stops.
    pub async fn run_timer(self) {
        let mut interval = tokio::time::interval(Duration::from_secs(2));
        loop {
            interval.tick().await;
            self.tick();
        }
    }

    fn spawn_step(&self) {
        {
            let mut inner = self.lock();
            if inner.stepping {
                return;
            }
            inner.stepping = true;
        }
        let store = self.clone();
        let run = move || {
            if let Err(e) = store.step() {
                tracing::error!("swarm model step failed: {e}");
            }
            store.lock().stepping = false;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(run);
            }
            Err(_) => run(),
        }
    }

    /// The outer step, its checkpoint, its evaluation and its files (blocking: run it off the
    /// async threads). Returns the new version, if there was anything to aggregate.
    pub fn step(&self) -> Result<Option<Lineage>, String> {
        let (outcome, params, velocity) = {
            let mut inner = self.lock();
            let outcome = inner.swarm.step();
            inner.first_pending = None;
            for (peer, refusal) in &outcome.refused {
                tracing::warn!(%peer, reason = refusal.kind(), "update refused at the step: {refusal}");
                strike(&mut inner, peer);
            }
            (outcome, inner.swarm.params().to_vec(), inner.swarm.velocity().to_vec())
        };
        let Some(lineage) = outcome.version else { return Ok(None) };
        let cpu = Device::flex();
        let model = params::load_flat(Model::clone(&self.template), &params).map_err(|e| e.to_string())?;
        let bytes = checkpoint::save(&model, &self.config, lineage.number).map_err(|e| e.to_string())?;
        let record = VersionRecord { lineage: lineage.clone(), root: self.root.clone(), accuracy: BTreeMap::new() };
        // A version that cannot be written (a full disk, a read-only folder) is still served from
        // memory, so the swarm goes on; the error is reported, and a restart resumes at the last
        // version that was written whole.
        let written = write_version(&self.dir, &record, &bytes, &velocity);
        if let Err(e) = &written {
            tracing::error!(folder = %self.dir.display(), "cannot write swarm model version {}: {e}", lineage.number);
        }
        {
            // Served as soon as it is on disk: peers move on while the relay evaluates it.
            let mut inner = self.lock();
            inner.served.push_front(Served { record, bytes: Bytes::from(bytes) });
            inner.served.truncate(self.settings.keep.max(1));
        }
        self.made.send_replace(Some(lineage.clone()));
        let accuracy =
            futures::executor::block_on(heldout_accuracy(&model, &Family::ALL, &self.settings.heldout, &cpu))
                .map_err(|e| e.to_string())?;
        tracing::info!(
            version = lineage.number,
            hash = %lineage.hash,
            updates = lineage.updates,
            accuracy = %mean(&accuracy),
            "new swarm model version"
        );
        let record = {
            let mut inner = self.lock();
            let served = inner.served.iter_mut().find(|s| s.record.lineage.hash == lineage.hash);
            served.map(|s| {
                s.record.accuracy = accuracy;
                s.record.clone()
            })
        };
        if let (Some(record), Ok(())) = (record, &written) {
            let json = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
            write_atomically(&version_file(&self.dir, &lineage.hash, "json"), &json)
                .map_err(|e| format!("writing the version's accuracy: {e}"))?;
        }
        if written.is_ok() {
            // The disk holds what is served (`keep` versions) and no more: without this a relay
            // would fill its disk a checkpoint and a velocity per version.
            let served = self.lock().served.iter().map(|s| s.record.lineage.hash.clone()).collect::<Vec<_>>();
            let keep: Vec<&str> = served.iter().map(String::as_str).collect();
            prune(&self.dir, &keep, &lineage.hash);
        }
        Ok(Some(lineage))
    }

    /// Evaluates the current version if it has no accuracy yet (the base, at start).
    pub fn evaluate_current(&self) -> Result<(), String> {
        let (hash, bytes) = {
            let inner = self.lock();
            let current = inner.served.front().expect("served");
            if !current.record.accuracy.is_empty() {
                return Ok(());
            }
            (current.record.lineage.hash.clone(), current.bytes.clone())
        };
        let cpu = Device::flex();
        let (model, _) = checkpoint::load(&bytes, Some(&self.config), &cpu).map_err(|e| e.to_string())?;
        let accuracy =
            futures::executor::block_on(heldout_accuracy(&model, &Family::ALL, &self.settings.heldout, &cpu))
                .map_err(|e| e.to_string())?;
        let mut inner = self.lock();
        if let Some(served) = inner.served.iter_mut().find(|s| s.record.lineage.hash == hash) {
            served.record.accuracy = accuracy;
        }
        Ok(())
    }
}

fn mean(accuracy: &BTreeMap<Family, f32>) -> String {
    format!("{:.3}", accuracy.values().sum::<f32>() / accuracy.len().max(1) as f32)
}

/// Refusals that say something about the sender (not about timing: a too-old or duplicate update
/// is an honest peer's race).
fn strikes_for(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Malformed(_)
            | Refusal::WrongShape { .. }
            | Refusal::NormOutlier { .. }
            | Refusal::Opposes { .. }
            | Refusal::AgainstHeading { .. }
            | Refusal::UnknownVersion { .. }
    )
}

fn strike(inner: &mut Inner, peer: &str) {
    let entry = inner.strikes.entry(peer.to_owned()).or_insert((0, None));
    entry.0 += 1;
    if entry.0 >= MAX_STRIKES {
        entry.1 = Some(Instant::now());
        tracing::warn!(%peer, "peer graylisted for swarm-model updates");
    }
}

/// A stored version read back.
struct Stored {
    record: VersionRecord,
    bytes: Bytes,
    params: Vec<f32>,
    velocity: Vec<f32>,
}

fn version_file(dir: &Path, hash: &str, ext: &str) -> PathBuf {
    dir.join(format!("{hash}.{ext}"))
}

fn read_file(path: PathBuf) -> Result<Vec<u8>, StartError> {
    std::fs::read(&path).map_err(|e| start_error(&path, format!("cannot read: {e}")))
}

/// A stored version's record and checkpoint, checked against the hash it is named for.
fn read_served(dir: &Path, hash: &str, config: &ModelConfig) -> Result<(Served, Vec<f32>), StartError> {
    if !is_version_hash(hash) {
        return Err(start_error(&dir.join("latest"), format!("{hash:?} is not a version hash")));
    }
    let path = |ext: &str| version_file(dir, hash, ext);
    let record: VersionRecord = serde_json::from_slice(&read_file(path("json"))?)
        .map_err(|e| start_error(&path("json"), format!("unreadable: {e}")))?;
    let bytes = read_file(path("tswm"))?;
    let (model, _) = checkpoint::load(&bytes, Some(config), &Device::flex())
        .map_err(|e| start_error(&path("tswm"), format!("refused: {e}")))?;
    let params =
        futures::executor::block_on(params::flatten(&model)).map_err(|e| start_error(&path("tswm"), e.to_string()))?;
    if params_hash(&params) != hash || record.lineage.hash != hash {
        return Err(start_error(&path("tswm"), "its parameters do not hash to the version it is named for"));
    }
    Ok((Served { record, bytes: Bytes::from(bytes) }, params))
}

fn read_version(dir: &Path, hash: &str, config: &ModelConfig) -> Result<Stored, StartError> {
    let (Served { record, bytes }, params) = read_served(dir, hash, config)?;
    let path = |ext: &str| version_file(dir, hash, ext);
    let velocity: Vec<f32> = read_file(path("velocity"))?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    if velocity.len() != params.len() {
        return Err(start_error(
            &path("velocity"),
            format!("{} values for {} parameters", velocity.len(), params.len()),
        ));
    }
    Ok(Stored { record, bytes, params, velocity })
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        // A full disk must not be left fuller by the half-written copy.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The files of one version: its checkpoint, its record, and the outer optimizer's velocity
/// (kept for the latest version only: it is what a restart resumes with).
const VERSION_FILES: [&str; 3] = ["tswm", "json", "velocity"];

fn write_version(dir: &Path, record: &VersionRecord, bytes: &[u8], velocity: &[f32]) -> std::io::Result<()> {
    let hash = &record.lineage.hash;
    let velocity: Vec<u8> = velocity.iter().flat_map(|v| v.to_le_bytes()).collect();
    let written = (|| {
        write_atomically(&version_file(dir, hash, "tswm"), bytes)?;
        write_atomically(&version_file(dir, hash, "velocity"), &velocity)?;
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomically(&version_file(dir, hash, "json"), &json)?;
        // Last: a crash before this line leaves `latest` on the previous, complete version.
        write_atomically(&dir.join("latest"), hash.as_bytes())
    })();
    if written.is_err() {
        // `latest` still names the previous version: this one's files are of no use, and on a
        // full disk they hold the space the next try needs.
        for ext in VERSION_FILES {
            let _ = std::fs::remove_file(version_file(dir, hash, ext));
        }
    }
    written
}

/// Deletes what the model folder no longer needs: the files of versions not in `keep` (the
/// served ones), the velocity of all but `latest`, and temporary files a crash left. Returns how
/// many files went; a file that cannot be deleted is left (and logged), nothing else depends on it.
fn prune(dir: &Path, keep: &[&str], latest: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match name.split_once('.') {
            _ if name.ends_with(".tmp") => true,
            Some((hash, ext)) if is_version_hash(hash) && VERSION_FILES.contains(&ext) => {
                !keep.contains(&hash) || (ext == "velocity" && hash != latest)
            }
            _ => false,
        };
        if stale {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(path = %entry.path().display(), "cannot delete an old model file: {e}"),
            }
        }
    }
    removed
}

pub mod mirror;

#[cfg(test)]
mod tests;
