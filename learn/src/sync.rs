//! A peer's side of the swarm model (the outer loop whose relay side is `tabswarm-aggregate`):
//! the version it trains from, when its next update is due, the update itself (its parameters
//! minus the version's, 8-bit with error feedback), and moving onto a new version.
//!
//! The tab's worker and the native peer use the same [`SwarmSync`]; only how the bytes travel
//! differs.

use tabswarm_aggregate::{Compressor, ModelUpdate, UpdateHeader, params_hash};
use tabswarm_model::{ModelConfig, ModelError, checkpoint, params};

use crate::run::TrainingRun;

/// Where a peer stands with the swarm model.
#[derive(Debug, Clone)]
pub struct SwarmSync {
    /// The version the peer trains from: its hash and number.
    pub version: String,
    pub number: u64,
    start: Vec<f32>,
    compressor: Compressor,
    every: u32,
    since: u32,
    /// Whether this version's update has gone out: one per version, then the peer trains on
    /// until the next version arrives (the relay refuses a second one as a duplicate).
    sent_for_version: bool,
    /// Updates sent and accepted so far.
    pub sent: u64,
    pub accepted: u64,
}

impl SwarmSync {
    /// Training from `run`'s current parameters, which are version `number` named `version`;
    /// an update every `every` rounds. Refused when the parameters do not hash to `version`.
    pub async fn new(run: &TrainingRun, version: &str, number: u64, every: u32) -> Result<Self, ModelError> {
        let start = run.parameters().await?;
        let hash = params_hash(&start);
        if hash != version {
            return Err(ModelError::InvalidBatch(format!(
                "the model's parameters hash to {hash}, not to swarm version {version}"
            )));
        }
        Ok(Self {
            version: hash,
            number,
            start,
            compressor: Compressor::default(),
            every: every.max(1),
            since: 0,
            sent_for_version: false,
            sent: 0,
            accepted: 0,
        })
    }

    /// Counts a finished round; true when an update is due (every `every` rounds, once per
    /// version).
    pub fn round_done(&mut self) -> bool {
        self.since += 1;
        self.since >= self.every && !self.sent_for_version
    }

    /// The update of `run` against the version it started from, under `peer`'s name.
    pub async fn update(&mut self, run: &TrainingRun, peer: &str) -> Result<ModelUpdate, ModelError> {
        let mut delta = run.parameters().await?;
        delta.iter_mut().zip(&self.start).for_each(|(d, s)| *d -= s);
        let header = UpdateHeader { base: self.version.clone(), peer: peer.to_owned(), rounds: self.since, params: 0 };
        self.since = 0;
        self.sent += 1;
        self.sent_for_version = true;
        self.compressor.compress(header, &delta).map_err(|e| ModelError::InvalidBatch(e.to_string()))
    }

    /// Moves `run` onto the version in `checkpoint_bytes`, which must be of `config` and whose
    /// parameters must hash to `hash` (so a swapped or damaged file is refused, not trained on).
    pub async fn adopt(
        &mut self,
        run: &mut TrainingRun,
        config: &ModelConfig,
        checkpoint_bytes: &[u8],
        hash: &str,
        number: u64,
    ) -> Result<(), ModelError> {
        let (model, _) = checkpoint::load(checkpoint_bytes, Some(config), &burn::tensor::Device::flex())?;
        let flat = params::flatten(&model).await?;
        let found = params_hash(&flat);
        if found != hash {
            return Err(ModelError::InvalidBatch(format!(
                "the checkpoint of swarm version {hash} holds parameters hashing to {found}"
            )));
        }
        run.load_flat(&flat)?;
        self.version = found;
        self.number = number;
        self.start = flat;
        self.since = 0;
        self.sent_for_version = false;
        // What rounding left out belongs to the old version's update; it is not carried over.
        self.compressor = Compressor::default();
        Ok(())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use tabswarm_model::ModelSize;

    use super::*;
    use crate::run::{Backend, RunPlan};

    #[test]
    fn one_update_per_version_then_the_next_version_is_adopted_only_if_it_is_what_it_claims() {
        let device = burn::tensor::Device::flex();
        let mut run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, RunPlan::solo(10, 1)).expect("run");
        let start = pollster::block_on(run.parameters()).expect("params");
        let hash = params_hash(&start);
        let err = pollster::block_on(SwarmSync::new(&run, &"00".repeat(32), 0, 2)).expect_err("wrong hash");
        assert!(err.to_string().contains("not to swarm version"), "{err}");
        let mut sync = pollster::block_on(SwarmSync::new(&run, &hash, 0, 2)).expect("sync");
        assert!(!sync.round_done());
        assert!(sync.round_done(), "due after 2 rounds");
        let update = pollster::block_on(sync.update(&run, "me")).expect("update");
        assert_eq!(
            (update.header.base.as_str(), update.header.rounds, update.header.params as usize),
            (hash.as_str(), 2, start.len())
        );
        // The run has not moved: the update is all zero.
        assert!(update.decompress().iter().all(|v| *v == 0.0));
        assert!(!sync.round_done() && !sync.round_done() && !sync.round_done(), "one update per version");
        // A new version: its checkpoint, with its name.
        let moved: Vec<f32> = start.iter().map(|v| v + 0.01).collect();
        let model = tabswarm_model::params::load_flat(ModelSize::Tiny.config().init(&device).expect("m"), &moved)
            .expect("load");
        let bytes = checkpoint::save(&model, &ModelSize::Tiny.config(), 1).expect("save");
        let config = run.config().clone();
        let err = pollster::block_on(sync.adopt(&mut run, &config, &bytes, &hash, 1)).expect_err("misnamed");
        assert!(err.to_string().contains("hashing to"), "{err}");
        let v1 = params_hash(&moved);
        pollster::block_on(sync.adopt(&mut run, &config, &bytes, &v1, 1)).expect("adopt");
        assert_eq!((sync.number, sync.version.as_str()), (1, v1.as_str()));
        assert_eq!(pollster::block_on(run.parameters()).expect("params"), moved);
        assert!(!sync.round_done() && sync.round_done(), "due again, for the new version");
    }
}
