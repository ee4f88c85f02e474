//! The swarm model: one model every peer starts from and feeds (a DiLoCo-style outer loop).
//!
//! Every H rounds a peer sends its update (its parameters minus the swarm version it started
//! from, 8-bit compressed with error feedback by a [`Compressor`]). A [`SwarmModel`] checks each
//! update as it arrives ([`SwarmModel::submit`]: version, shape, values, binding, one per peer),
//! and on [`SwarmModel::step`] refuses the outliers of the batch (a norm far above the others', a
//! direction against theirs or against the way the swarm has been moving), aggregates the rest
//! with a robust [`Rule`], and takes the outer step — Nesterov momentum on the outer gradient
//! `−aggregate`, as in DiLoCo — to publish the next version, named by the SHA-256 of its
//! parameters, with its [`Lineage`].
//!
//! Everything here is a pure function of the updates received, in the order of the peers' names,
//! so two relays that aggregate the same updates publish the same version. It works on flat `f32`
//! vectors and knows nothing of burn or the network.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
pub use tabswarm_protocol::update::{
    BLOCK, Lineage, ModelUpdate, UPDATE_ERROR_KINDS, UpdateError, UpdateHeader, params_hash,
};

/// How the accepted updates of a step become one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Rule {
    /// The plain mean (no robustness; for comparison).
    Mean,
    /// Each update's norm clipped to `multiplier` × the median norm of the step, then the mean.
    ClippedMean { multiplier: f32 },
    /// Per coordinate, the mean after dropping the `trim` largest and `trim` smallest values (the
    /// median when too few updates are left).
    TrimmedMean { trim: usize },
    /// Per coordinate, the median.
    Median,
}

/// The outer loop's settings. The defaults are the swarm's: DiLoCo's outer Nesterov step with a
/// gentler learning rate and momentum (0.35, 0.5) than DiLoCo's 0.7 / 0.9, which on our models
/// gained early and then drifted (`docs/learning.md`, the outer-step sweep over 300 rounds and
/// 3 seeds: 63.1 % ± 0.3 held-out against 59.1 % ± 3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OuterConfig {
    pub rule: Rule,
    pub outer_lr: f32,
    pub momentum: f32,
    /// Nesterov momentum (DiLoCo); plain heavy-ball momentum when false.
    pub nesterov: bool,
    /// An update whose norm is over this × the median norm of the step's updates is refused
    /// (with at least 3 updates).
    pub outlier_ratio: f32,
    /// An update whose cosine with the coordinate-wise median of the step's updates is below this
    /// is refused (with at least 3 updates): it pulls against the swarm.
    pub min_agreement: f32,
    /// An update whose cosine with the swarm's heading — the direction the outer optimiser has been
    /// moving the model, −velocity — is below this is refused, once the swarm has moved (any
    /// number of updates). It tells a sign-flipped update apart where the median cannot: the
    /// median of a step's updates contains each of them, so every update, a flipped one too,
    /// leans towards it (`docs/learning.md`, "Telling a sign flip apart"). `-1` turns it off.
    #[serde(default)]
    pub min_heading: f32,
    /// Updates from peers not bound to a wallet are refused unless this is set.
    pub accept_unbound: bool,
    /// Recent versions remembered (an update for one of them is "too old", any other "unknown").
    pub keep_versions: usize,
}

impl Default for OuterConfig {
    fn default() -> Self {
        Self {
            rule: Rule::ClippedMean { multiplier: 2.0 },
            outer_lr: 0.35,
            momentum: 0.5,
            nesterov: true,
            outlier_ratio: 10.0,
            min_agreement: 0.0,
            min_heading: 0.0,
            accept_unbound: false,
            keep_versions: 8,
        }
    }
}

/// Why an update does not go into the swarm model. [`Refusal::kind`] is what `/api/swarm` counts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Malformed(#[from] UpdateError),
    #[error("update is for version {base}, which this relay does not know")]
    UnknownVersion { base: String },
    #[error("update is for version {number} ({base}); the swarm is at version {current}")]
    TooOld { base: String, number: u64, current: u64 },
    #[error("update has {found} parameters; the swarm model has {expected}")]
    WrongShape { expected: usize, found: usize },
    #[error("peer {peer} is not bound to a wallet (the relay runs without --accept-unbound)")]
    Unbound { peer: String },
    #[error("peer {peer} already sent an update for this version")]
    Duplicate { peer: String },
    #[error("update norm {norm:.4} is over {ratio}× the median norm {median:.4} of this step")]
    NormOutlier { norm: f32, median: f32, ratio: f32 },
    #[error("update points against the swarm (cosine {cosine:.3} with the median update)")]
    Opposes { cosine: f32 },
    #[error("update points against the swarm's heading (cosine {cosine:.3} with its momentum)")]
    AgainstHeading { cosine: f32 },
}

/// Every name [`Refusal::kind`] can give: the update's own ([`UPDATE_ERROR_KINDS`]) and then the
/// swarm model's.
pub const REFUSAL_KINDS: [&str; 13] = [
    UPDATE_ERROR_KINDS[0],
    UPDATE_ERROR_KINDS[1],
    UPDATE_ERROR_KINDS[2],
    UPDATE_ERROR_KINDS[3],
    UPDATE_ERROR_KINDS[4],
    "unknown_version",
    "too_old",
    "wrong_shape",
    "unbound",
    "duplicate",
    "norm_outlier",
    "opposes_swarm",
    "against_heading",
];

impl Refusal {
    /// A short, stable name for counting refusals (one of [`REFUSAL_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed(e) => e.kind(),
            Refusal::UnknownVersion { .. } => "unknown_version",
            Refusal::TooOld { .. } => "too_old",
            Refusal::WrongShape { .. } => "wrong_shape",
            Refusal::Unbound { .. } => "unbound",
            Refusal::Duplicate { .. } => "duplicate",
            Refusal::NormOutlier { .. } => "norm_outlier",
            Refusal::Opposes { .. } => "opposes_swarm",
            Refusal::AgainstHeading { .. } => "against_heading",
        }
    }
}

/// What one outer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// The new version, or `None` when no update was left to aggregate (the version stays).
    pub version: Option<Lineage>,
    /// Updates refused at the step, with their senders (to score them down).
    pub refused: Vec<(String, Refusal)>,
    /// Senders whose updates went in.
    pub accepted: Vec<String>,
}

/// The swarm model as a relay keeps it: the current parameters, the outer optimiser's velocity,
/// the lineage, and the updates waiting for the next step.
#[derive(Debug, Clone)]
pub struct SwarmModel {
    params: Vec<f32>,
    velocity: Vec<f32>,
    lineage: Lineage,
    recent: VecDeque<(String, u64)>,
    pending: BTreeMap<String, Vec<f32>>,
    refused: BTreeMap<String, u64>,
    config: OuterConfig,
}

impl SwarmModel {
    /// Version 0: the base's parameters.
    pub fn new(base: Vec<f32>, config: OuterConfig) -> Self {
        let lineage =
            Lineage { hash: params_hash(&base), number: 0, parent: None, contributors: Vec::new(), updates: 0 };
        Self::resume(base, vec![], lineage, config)
    }

    /// Continues from a stored version and velocity (empty: zero).
    pub fn resume(params: Vec<f32>, velocity: Vec<f32>, lineage: Lineage, config: OuterConfig) -> Self {
        let velocity = if velocity.len() == params.len() { velocity } else { vec![0.0; params.len()] };
        Self {
            params,
            velocity,
            recent: VecDeque::from([(lineage.hash.clone(), lineage.number)]),
            lineage,
            pending: BTreeMap::new(),
            refused: BTreeMap::new(),
            config,
        }
    }

    pub fn params(&self) -> &[f32] {
        &self.params
    }

    pub fn velocity(&self) -> &[f32] {
        &self.velocity
    }

    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Updates waiting for the next step.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Refusals since start, by [`Refusal::kind`].
    pub fn refused(&self) -> &BTreeMap<String, u64> {
        &self.refused
    }

    /// Decodes and [`submit`](Self::submit)s an update as it came off the wire.
    pub fn submit_bytes(&mut self, bytes: &[u8], bound: bool) -> Result<(), Refusal> {
        let update = ModelUpdate::decode(bytes).map_err(Refusal::from).inspect_err(|r| self.count(r))?;
        self.submit(&update, bound)
    }

    /// Checks an update against the current version and keeps it for the next step. Nothing of a
    /// refused update is kept.
    pub fn submit(&mut self, update: &ModelUpdate, bound: bool) -> Result<(), Refusal> {
        let result = self.check(update, bound);
        match result {
            Ok(()) => {
                self.pending.insert(update.header.peer.clone(), update.decompress());
                Ok(())
            }
            Err(refusal) => {
                self.count(&refusal);
                Err(refusal)
            }
        }
    }

    fn check(&self, update: &ModelUpdate, bound: bool) -> Result<(), Refusal> {
        let header = &update.header;
        if header.base != self.lineage.hash {
            return Err(match self.recent.iter().find(|(hash, _)| *hash == header.base) {
                Some((_, number)) => {
                    Refusal::TooOld { base: header.base.clone(), number: *number, current: self.lineage.number }
                }
                None => Refusal::UnknownVersion { base: header.base.clone() },
            });
        }
        let found = update.values.len();
        if found != self.params.len() || header.params as usize != found {
            return Err(Refusal::WrongShape { expected: self.params.len(), found: header.params as usize });
        }
        let blocks = found.div_ceil(BLOCK);
        if update.scales.len() != blocks {
            return Err(UpdateError::WrongLength {
                expected: blocks * 4 + found,
                found: update.scales.len() * 4 + found,
            }
            .into());
        }
        if let Some(block) = update.scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
            return Err(UpdateError::BadScale { block }.into());
        }
        if !bound && !self.config.accept_unbound {
            return Err(Refusal::Unbound { peer: header.peer.clone() });
        }
        if self.pending.contains_key(&header.peer) {
            return Err(Refusal::Duplicate { peer: header.peer.clone() });
        }
        Ok(())
    }

    fn count(&mut self, refusal: &Refusal) {
        *self.refused.entry(refusal.kind().to_owned()).or_default() += 1;
    }

    /// Aggregates the pending updates into the next version (see the crate doc).
    pub fn step(&mut self) -> StepOutcome {
        let pending = std::mem::take(&mut self.pending);
        let (accepted, refused) = screen(pending, heading(&self.velocity).as_deref(), &self.config);
        for (_, refusal) in &refused {
            self.count(refusal);
        }
        if accepted.is_empty() {
            return StepOutcome { version: None, refused, accepted: Vec::new() };
        }
        let updates: Vec<&[f32]> = accepted.iter().map(|(_, u)| u.as_slice()).collect();
        let aggregate = aggregate(&updates, self.config.rule);
        let (before, velocity_before) = (self.params.clone(), self.velocity.clone());
        outer_step(&mut self.params, &mut self.velocity, &aggregate, &self.config);
        if self.params == before {
            // Nothing moved (every update was zero and there is no momentum): no new version, which
            // would carry the same name as this one.
            self.velocity = velocity_before;
            let accepted = accepted.into_iter().map(|(peer, _)| peer).collect();
            return StepOutcome { version: None, refused, accepted };
        }
        let contributors: Vec<String> = accepted.iter().map(|(peer, _)| peer.clone()).collect();
        self.lineage = Lineage {
            hash: params_hash(&self.params),
            number: self.lineage.number + 1,
            parent: Some(self.lineage.hash.clone()),
            updates: contributors.len() as u32,
            contributors: contributors.clone(),
        };
        self.recent.push_front((self.lineage.hash.clone(), self.lineage.number));
        self.recent.truncate(self.config.keep_versions.max(1));
        StepOutcome { version: Some(self.lineage.clone()), refused, accepted: contributors }
    }
}

type Updates = Vec<(String, Vec<f32>)>;
/// Updates with their cosine against a reference.
type Scored = Vec<((String, Vec<f32>), f32)>;

/// Splits a step's updates (sorted by sender) into those that go in and those refused as outliers.
/// The norm and median screens compare an update with the others that carry anything (an all-zero
/// update, from a peer whose groups had no signal, is honest and passes), and need at least 3 of
/// those; the heading screen compares it with the swarm's [`heading`], once it has one, and refuses
/// only a minority of them.
fn screen(
    pending: BTreeMap<String, Vec<f32>>,
    heading: Option<&[f32]>,
    config: &OuterConfig,
) -> (Updates, Vec<(String, Refusal)>) {
    let mut refused = Vec::new();
    let (mut kept, zero): (Updates, Updates) = pending.into_iter().partition(|(_, u)| u.iter().any(|x| *x != 0.0));
    if kept.len() >= 3 {
        let norms: Vec<f32> = kept.iter().map(|(_, u)| norm(u)).collect();
        let median = median_of(&norms);
        let ratio = config.outlier_ratio;
        let (inliers, outliers): (Vec<_>, Vec<_>) =
            kept.into_iter().zip(norms).partition(|(_, n)| *n <= ratio * median);
        refused
            .extend(outliers.into_iter().map(|((peer, _), norm)| (peer, Refusal::NormOutlier { norm, median, ratio })));
        kept = inliers.into_iter().map(|(u, _)| u).collect();
    }
    if let Some(heading) = heading.filter(|_| config.min_heading > -1.0) {
        let (along, against) = split_by_cosine(kept, heading, config.min_heading);
        // Only a minority is refused: when most updates turn against the heading, the heading is
        // what is wrong (a step that should be undone), and refusing them would stall the swarm.
        if 2 * against.len() < along.len() + against.len() {
            refused.extend(against.into_iter().map(|((peer, _), cosine)| (peer, Refusal::AgainstHeading { cosine })));
            kept = along;
        } else {
            kept = along.into_iter().chain(against.into_iter().map(|(u, _)| u)).collect();
        }
    }
    if kept.len() >= 3 {
        let views: Vec<&[f32]> = kept.iter().map(|(_, u)| u.as_slice()).collect();
        let reference = aggregate(&views, Rule::Median);
        let (agree, oppose) = split_by_cosine(kept, &reference, config.min_agreement);
        refused.extend(oppose.into_iter().map(|((peer, _), cosine)| (peer, Refusal::Opposes { cosine })));
        kept = agree;
    }
    kept.extend(zero);
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    (kept, refused)
}

/// Splits updates into those whose cosine with `reference` is at least `min` (or undefined: a zero
/// reference says nothing against them) and the others, with their cosines.
fn split_by_cosine(updates: Updates, reference: &[f32], min: f32) -> (Updates, Scored) {
    let mut below = Vec::new();
    let mut kept = Vec::with_capacity(updates.len());
    for update in updates {
        let c = cosine(&update.1, reference);
        if c >= min || c.is_nan() { kept.push(update) } else { below.push((update, c)) }
    }
    (kept, below)
}

/// A cosine threshold given on a command line (`--min-heading`): a number from
/// −1 (off) to 1, or an error that says which. Shared by the relay's and the peer's flags.
pub fn parse_cosine(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(c) if (-1.0..=1.0).contains(&c) => Ok(c),
        Ok(c) => Err(format!("a cosine is from -1 (off) to 1, not {c}")),
        Err(e) => Err(format!("not a number ({e}); a cosine is from -1 (off) to 1")),
    }
}

/// The direction the outer steps have been moving the model — −velocity — or `None` before any
/// step has moved it.
pub fn heading(velocity: &[f32]) -> Option<Vec<f32>> {
    velocity.iter().any(|v| *v != 0.0).then(|| velocity.iter().map(|v| -v).collect())
}

/// The aggregate of `updates` (all the same length, at least one) by `rule`.
pub fn aggregate(updates: &[&[f32]], rule: Rule) -> Vec<f32> {
    let n = updates.len();
    let len = updates[0].len();
    match rule {
        Rule::Mean => mean(updates, &vec![1.0; n]),
        Rule::ClippedMean { multiplier } => {
            let norms: Vec<f32> = updates.iter().map(|u| norm(u)).collect();
            let limit = multiplier * median_of(&norms);
            let weights: Vec<f32> = norms.iter().map(|&n| if n > limit && n > 0.0 { limit / n } else { 1.0 }).collect();
            mean(updates, &weights)
        }
        Rule::TrimmedMean { trim } if n > 2 * trim => {
            let mut column = vec![0.0; n];
            (0..len)
                .map(|i| {
                    for (c, u) in column.iter_mut().zip(updates) {
                        *c = u[i];
                    }
                    column.sort_by(f32::total_cmp);
                    let kept = &column[trim..n - trim];
                    kept.iter().sum::<f32>() / kept.len() as f32
                })
                .collect()
        }
        Rule::TrimmedMean { .. } | Rule::Median => {
            let mut column = vec![0.0; n];
            (0..len)
                .map(|i| {
                    for (c, u) in column.iter_mut().zip(updates) {
                        *c = u[i];
                    }
                    median_of(&column)
                })
                .collect()
        }
    }
}

/// The outer step on the aggregate: the outer gradient is `−aggregate` (the old parameters minus
/// the average of the new), then SGD with (Nesterov) momentum, PyTorch's form:
/// `v ← μ·v + g`, `θ ← θ − lr·(g + μ·v)` (Nesterov) or `θ ← θ − lr·v`.
pub fn outer_step(params: &mut [f32], velocity: &mut [f32], aggregate: &[f32], config: &OuterConfig) {
    let (lr, mu) = (config.outer_lr, config.momentum);
    for ((theta, v), a) in params.iter_mut().zip(velocity.iter_mut()).zip(aggregate) {
        let g = -a;
        *v = mu * *v + g;
        let step = if config.nesterov { g + mu * *v } else { *v };
        *theta -= lr * step;
    }
}

fn mean(updates: &[&[f32]], weights: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; updates[0].len()];
    for (u, w) in updates.iter().zip(weights) {
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o += w * x;
        }
    }
    let n = updates.len() as f32;
    out.iter_mut().for_each(|o| *o /= n);
    out
}

/// Euclidean norm.
pub fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt() as f32
}

/// Cosine similarity (NaN when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    (dot / (f64::from(norm(a)) * f64::from(norm(b)))) as f32
}

fn median_of(values: &[f32]) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// A sender's side: compresses each update to 8 bits and carries the rounding error into the next
/// one (error feedback), so no part of what the peer learned is lost for good.
#[derive(Debug, Clone, Default)]
pub struct Compressor {
    residual: Vec<f32>,
}

impl Compressor {
    /// The compressed `delta` (plus what earlier rounding left out).
    pub fn compress(&mut self, header: UpdateHeader, delta: &[f32]) -> Result<ModelUpdate, UpdateError> {
        if self.residual.len() != delta.len() {
            self.residual = vec![0.0; delta.len()];
        }
        let corrected: Vec<f32> = delta.iter().zip(&self.residual).map(|(d, r)| d + r).collect();
        let update = ModelUpdate::compress(header, &corrected)?;
        for ((r, c), sent) in self.residual.iter_mut().zip(&corrected).zip(update.decompress()) {
            *r = c - sent;
        }
        Ok(update)
    }

    /// What has not been sent yet.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }
}

#[cfg(test)]
mod tests;
