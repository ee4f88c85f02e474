//! How a Tabswarm peer learns, the way every peer of the swarm runs it (SAPO): each round a
//! [`Peer`] asks itself questions, samples a group of completions per question, scores them with the
//! shared verifier, shares the groups as text, and takes GRPO steps on `local` of its own groups
//! plus `external` groups received from others. Received groups arrive as [`ScoredGroup`]s: the
//! receiver's node already regenerated their questions and re-scored them (`wire::decode`), so
//! nothing a sender claims is trusted and nothing is scored twice.
//!
//! The same [`Peer`] runs in a tab's worker and in the native peer ([`run::TrainingRun`], with its
//! own [`run::RunProgress`]) and in the in-memory sharing experiment ([`experiment`]); only where
//! shared groups go differs. [`pretrain`] makes the swarm's base checkpoint. Built on
//! `tabswarm-model`; knows nothing of the network or the page.

pub mod experiment;
pub mod pretrain;
pub mod run;
pub mod sizing;
pub mod sync;

use std::collections::BTreeMap;

use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tabswarm_model::tokenizer::EOS;
use tabswarm_model::{
    GrpoBatch, GrpoConfig, Model, ModelError, SamplingConfig, Tokenizer, TrainConfig, Trainer, generate as sample,
    group_advantages,
};
use tabswarm_protocol::rollout::{RolloutGroup, ScoredGroup, score_group};
use tabswarm_protocol::tasks::{Family, MID_DIFFICULTY, MIN_DIFFICULTY, Question, generate, verify};

/// Question seeds at or above this are kept for evaluation: training never asks them.
pub const EVAL_SEED_BASE: u64 = 1 << 63;

/// How a peer learns. The defaults are the swarm's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlConfig {
    /// Families asked, one question each in turn.
    pub families: Vec<Family>,
    /// Questions are drawn at levels `MIN_DIFFICULTY..=max_difficulty`, uniformly.
    pub max_difficulty: u8,
    /// Questions this peer asks itself per round (its generation budget).
    pub questions_per_round: usize,
    /// Completions sampled per question (G).
    pub group_size: usize,
    /// Own groups trained on per round (I).
    pub local: usize,
    /// Groups from other peers trained on per round (J).
    pub external: usize,
    /// Which groups fill the I and J slots.
    pub selection: Selection,
    /// Groups per GRPO step: the groups with a reward spread are trained on in steps of this many
    /// (so a round with more informative groups takes more steps); 0 = always one step per round.
    pub groups_per_step: usize,
    pub temperature: f32,
    pub learning_rate: f64,
    pub clip_low: f32,
    pub clip_high: f32,
    /// Per-family levels that follow the peer's success rate; without it, levels are drawn
    /// uniformly from `MIN_DIFFICULTY..=max_difficulty`.
    #[serde(default)]
    pub curriculum: Option<Curriculum>,
    /// Weight of partial credit ([`tabswarm_protocol::tasks::partial_credit`]: the share of the
    /// answer's characters right) added to each completion's reward when this peer computes its
    /// advantages; 0 (the default) trains on the verified reward alone. The reward shared and
    /// credited is never changed.
    #[serde(default)]
    pub partial_credit: f32,
}

/// A curriculum: each family's level moves so that the peer's success rate on it stays in a band
/// where groups carry signal (all-right and all-wrong groups teach GRPO nothing). The level is part
/// of every question id, so receivers still regenerate and re-verify exactly what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Curriculum {
    /// Below this success rate the family's level goes down one.
    pub low: f32,
    /// Above this it goes up one (up to `max_difficulty`).
    pub high: f32,
    /// Own completions of a family judged before its level may move again.
    pub window: u32,
    /// A family is *mastered* when its last window at `max_difficulty` was above `high`: its
    /// groups are then mostly all right and teach GRPO nothing. It is asked on one of every
    /// `revisit` of its turns (so forgetting it is still seen), the others going to the next
    /// family not mastered. 1 asks every family on every turn.
    #[serde(default = "Curriculum::every_turn")]
    pub revisit: u32,
}

impl Curriculum {
    fn every_turn() -> u32 {
        1
    }
}

impl Default for Curriculum {
    fn default() -> Self {
        Self { low: 0.2, high: 0.8, window: 32, revisit: 1 }
    }
}

impl Default for RlConfig {
    fn default() -> Self {
        Self {
            families: Family::ALL.to_vec(),
            max_difficulty: MID_DIFFICULTY,
            questions_per_round: 8,
            group_size: 8,
            local: 4,
            external: 4,
            selection: Selection::PreferSignal,
            groups_per_step: 0,
            temperature: 1.0,
            learning_rate: 3e-4,
            clip_low: 0.2,
            clip_high: 0.28,
            curriculum: None,
            partial_credit: 0.0,
        }
    }
}

impl RlConfig {
    /// Checks the numbers; names the first that is wrong.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidBatch(why));
        if self.families.is_empty() {
            return bad("choose at least one task family".into());
        }
        if !(2..=tabswarm_protocol::rollout::MAX_GROUP_SIZE).contains(&self.group_size) {
            return bad(format!("group size {} is outside 2..=32", self.group_size));
        }
        if self.questions_per_round == 0 || self.local > self.questions_per_round {
            return bad(format!(
                "{} local groups cannot come from {} questions per round",
                self.local, self.questions_per_round
            ));
        }
        generate(self.families[0], self.max_difficulty, 0).map_err(|e| ModelError::InvalidBatch(e.to_string()))?;
        if !(0.0..=1.0).contains(&self.partial_credit) {
            return bad(format!("a partial-credit weight is from 0 (off) to 1, not {}", self.partial_credit));
        }
        if let Some(c) = &self.curriculum {
            if !(0.0 <= c.low && c.low < c.high && c.high <= 1.0 && c.window > 0) {
                return bad(format!(
                    "a curriculum band must have 0 <= low < high <= 1 and a window of at least one completion; got {}..{} over {}",
                    c.low, c.high, c.window
                ));
            }
            if c.revisit == 0 {
                return bad(
                    "a mastered family is asked on one of every `revisit` turns: revisit must be at least 1".into()
                );
            }
        }
        Ok(())
    }

    /// The GRPO step's settings these numbers give (the clipping range; no KL term).
    pub fn grpo(&self) -> GrpoConfig {
        GrpoConfig { clip_low: self.clip_low, clip_high: self.clip_high, kl_coef: 0.0 }
    }
}

/// How the I local and J external training groups are picked from what is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Uniformly at random.
    Uniform,
    /// Uniformly among groups whose rewards differ (GRPO learns nothing from the others), then
    /// uniformly among the rest if too few.
    PreferSignal,
}

/// What one round of one peer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    pub round: u64,
    /// Mean reward of this peer's own completions this round.
    pub mean_reward: f32,
    /// Per family: (correct, asked) over this round's own completions.
    pub correct: BTreeMap<Family, (u32, u32)>,
    /// Groups in the GRPO step (with signal), local and external.
    pub trained_local: usize,
    pub trained_external: usize,
    pub loss: Option<f32>,
    /// Groups picked this round (own or received) whose text the tokenizer cannot encode, so no
    /// step could use them.
    pub untrainable: u64,
}

/// One learner: a policy, its optimiser, and the round loop.
#[derive(Debug)]
pub struct Peer {
    pub name: String,
    trainer: Trainer,
    config: RlConfig,
    device: Device,
    tokenizer: Tokenizer,
    rng: ChaCha8Rng,
    round: u64,
    steps: u64,
    /// Picked groups whose text the tokenizer could not encode, since the start (so no step could
    /// use them).
    pub untrainable: u64,
    /// With a curriculum: each family's level, and (correct, judged) since it last moved.
    levels: BTreeMap<Family, u8>,
    judged: BTreeMap<Family, (u32, u32)>,
    /// With a curriculum: the mastered families (see [`Curriculum::revisit`]), each with the turns
    /// it has had since it was mastered.
    mastered: BTreeMap<Family, u32>,
}

impl Peer {
    /// A peer that starts from `model` (e.g. the swarm's base checkpoint) on `device`.
    pub fn new(name: &str, model: Model, config: RlConfig, device: &Device, seed: u64) -> Result<Self, ModelError> {
        config.validate()?;
        let train = TrainConfig { learning_rate: config.learning_rate, weight_decay: 0.0, max_grad_norm: 1.0 };
        Ok(Self {
            name: name.into(),
            trainer: Trainer::new(model, train, device),
            config,
            device: device.clone(),
            tokenizer: Tokenizer::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            round: 0,
            steps: 0,
            untrainable: 0,
            levels: BTreeMap::new(),
            judged: BTreeMap::new(),
            mastered: BTreeMap::new(),
        })
    }

    /// The level each family is asked at now (with a curriculum; otherwise levels are drawn).
    pub fn level(&self, family: Family) -> u8 {
        self.levels.get(&family).copied().unwrap_or(MIN_DIFFICULTY)
    }

    /// Moves the policy onto `flat` parameters (a new swarm version), keeping the optimiser.
    pub fn load_flat(&mut self, flat: &[f32]) -> Result<(), ModelError> {
        self.trainer.load_flat(flat)
    }

    /// Moves each family's level by its success rate (see [`Curriculum`]).
    fn adapt(&mut self, correct: &BTreeMap<Family, (u32, u32)>) {
        let Some(c) = self.config.curriculum else { return };
        for (&family, &(right, asked)) in correct {
            let judged = self.judged.entry(family).or_default();
            judged.0 += right;
            judged.1 += asked;
            if judged.1 < c.window {
                continue;
            }
            let rate = judged.0 as f32 / judged.1 as f32;
            let level = self.levels.entry(family).or_insert(MIN_DIFFICULTY);
            let at_top = *level == self.config.max_difficulty;
            if rate > c.high && *level < self.config.max_difficulty {
                *level += 1;
            } else if rate < c.low && *level > MIN_DIFFICULTY {
                *level -= 1;
            }
            *judged = (0, 0);
            if at_top && rate > c.high {
                self.mastered.entry(family).or_insert(0);
            } else {
                self.mastered.remove(&family);
            }
        }
    }

    /// The level `family` is asked at, with a curriculum (`None`: levels are drawn at random).
    pub fn curriculum_level(&self, family: Family) -> Option<u8> {
        self.config.curriculum.map(|_| self.level(family))
    }

    /// Whether `family` is mastered (see [`Curriculum::revisit`]).
    pub fn is_mastered(&self, family: Family) -> bool {
        self.mastered.contains_key(&family)
    }

    /// The family asked in question slot `slot` of all the run's slots: the families in turn, a
    /// mastered one's turn (but one in `revisit`) passed to the next family not mastered.
    fn family_for(&mut self, slot: usize) -> Family {
        let families = &self.config.families;
        let family = families[slot % families.len()];
        let revisit = self.config.curriculum.map_or(1, |c| c.revisit);
        let Some(turns) = self.mastered.get_mut(&family) else { return family };
        *turns += 1;
        if (*turns - 1) % revisit == 0 {
            return family;
        }
        (1..families.len())
            .map(|step| families[(slot + step) % families.len()])
            .find(|f| !self.mastered.contains_key(f))
            .unwrap_or(family)
    }

    /// The policy as it is now.
    pub fn model(&self) -> Model {
        self.trainer.inference_model()
    }

    /// Asks `questions` a round from now on (each with the same group of completions), the own
    /// and received groups trained on scaled in proportion (see [`sizing`]).
    pub fn set_questions_per_round(&mut self, questions: usize) -> Result<(), ModelError> {
        let was = self.config.questions_per_round.max(1);
        let config = RlConfig {
            questions_per_round: questions,
            local: self.config.local * questions / was,
            external: self.config.external * questions / was,
            ..self.config.clone()
        };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Questions asked per round.
    pub fn questions_per_round(&self) -> usize {
        self.config.questions_per_round
    }

    /// Completions sampled per question.
    pub fn group_size(&self) -> usize {
        self.config.group_size
    }

    /// The device the peer's model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// GRPO steps taken (the policy version stamped on shared rollouts).
    pub fn policy_version(&self) -> u64 {
        self.steps
    }

    /// Asks this round's questions and samples a group of completions for each, scored with the
    /// shared verifier (the same call a receiver makes).
    pub async fn generate_round(&mut self) -> Result<Vec<ScoredGroup>, ModelError> {
        let questions: Vec<Question> = (0..self.config.questions_per_round)
            .map(|i| {
                let family = self.family_for(self.round as usize * self.config.questions_per_round + i);
                let difficulty = match self.config.curriculum {
                    Some(_) => self.level(family),
                    None => self.rng.random_range(MIN_DIFFICULTY..=self.config.max_difficulty),
                };
                let seed = self.rng.random_range(0..EVAL_SEED_BASE);
                generate(family, difficulty, seed)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| ModelError::InvalidBatch(e.to_string()))?;
        let sampling = SamplingConfig {
            temperature: self.config.temperature,
            seed: self.rng.random(),
            ..SamplingConfig::default()
        };
        let completions = complete(&self.model(), &questions, self.config.group_size, &sampling, &self.device).await?;
        let mut groups = Vec::with_capacity(questions.len());
        for (question, texts) in questions.into_iter().zip(completions) {
            let group = RolloutGroup {
                question: question.id,
                peer: self.name.clone(),
                policy_version: self.steps,
                completions: texts,
                rewards: Vec::new(),
            };
            // Our own groups pass the same checks as anyone's (a completion is capped by the
            // generation length, so this only fails on a bug).
            groups.push(score_group(group).map_err(|e| ModelError::InvalidBatch(e.to_string()))?);
        }
        Ok(groups)
    }

    /// The rewards this peer trains `group` on: the verified ones, plus partial credit at the
    /// configured weight.
    pub fn training_rewards(&self, group: &ScoredGroup) -> Vec<f32> {
        let weight = self.config.partial_credit;
        let mut rewards = group.rewards();
        if weight > 0.0 {
            for (reward, completion) in rewards.iter_mut().zip(&group.group.completions) {
                *reward += weight * tabswarm_protocol::tasks::partial_credit(&group.question, completion);
            }
        }
        rewards
    }

    /// Picks I own and J external groups (`received`: others' groups as the receiver's node
    /// verified and scored them; this peer's own, echoed back, are skipped) and trains on those
    /// with a reward spread: one GRPO step, or one per `groups_per_step` groups. Returns what the
    /// round did.
    pub async fn train_round(
        &mut self,
        own: &[ScoredGroup],
        received: Vec<ScoredGroup>,
    ) -> Result<RoundStats, ModelError> {
        let untrainable_before = self.untrainable;
        let external: Vec<ScoredGroup> = received.into_iter().filter(|g| g.group.peer != self.name).collect();
        let local = select(own, self.config.local, self.config.selection, &mut self.rng);
        let external = select(&external, self.config.external, self.config.selection, &mut self.rng);

        let mut batches = vec![GrpoBatch { sequences: vec![], prompt_lens: vec![], advantages: vec![] }];
        let (mut trained_local, mut trained_external) = (0usize, 0usize);
        for (group, is_local) in local.iter().map(|g| (g, true)).chain(external.iter().map(|g| (g, false))) {
            let Some(advantages) = group_advantages(&self.training_rewards(group)) else { continue };
            let Ok(rows) = self.sequences(group) else {
                self.untrainable += 1;
                continue;
            };
            let per_step = self.config.groups_per_step;
            if per_step > 0
                && trained_local + trained_external > 0
                && (trained_local + trained_external).is_multiple_of(per_step)
            {
                batches.push(GrpoBatch { sequences: vec![], prompt_lens: vec![], advantages: vec![] });
            }
            let batch = batches.last_mut().expect("at least one batch");
            for ((seq, prompt_len), advantage) in rows.into_iter().zip(advantages) {
                batch.sequences.push(seq);
                batch.prompt_lens.push(prompt_len);
                batch.advantages.push(advantage);
            }
            if is_local { trained_local += 1 } else { trained_external += 1 }
        }
        let mut loss = None;
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            self.steps += 1;
            loss = Some(self.trainer.grpo_step(batch, None, &self.config.grpo()).await?.loss);
        }

        let mut correct: BTreeMap<Family, (u32, u32)> = BTreeMap::new();
        let (mut reward, mut n) = (0.0, 0usize);
        for group in own {
            let entry = correct.entry(group.question.id.family).or_default();
            for score in &group.scores {
                entry.0 += u32::from(score.correct);
                entry.1 += 1;
                reward += score.reward;
                n += 1;
            }
        }
        let stats = RoundStats {
            round: self.round,
            mean_reward: if n == 0 { 0.0 } else { reward / n as f32 },
            correct,
            trained_local,
            trained_external,
            loss,
            untrainable: self.untrainable - untrainable_before,
        };
        self.adapt(&stats.correct);
        self.round += 1;
        Ok(stats)
    }

    /// Token rows (BOS prompt completion EOS) of a group, with the prompt length.
    fn sequences(&self, group: &ScoredGroup) -> Result<Vec<(Vec<u32>, usize)>, ModelError> {
        let prompt = self.tokenizer.prompt(&group.question.prompt)?;
        group
            .group
            .completions
            .iter()
            .map(|text| {
                let mut seq = prompt.clone();
                seq.extend(self.tokenizer.encode(text)?);
                seq.push(EOS);
                Ok((seq, prompt.len()))
            })
            .collect()
    }
}

/// Up to `n` groups by `rule`.
pub fn select<'a>(groups: &'a [ScoredGroup], n: usize, rule: Selection, rng: &mut impl Rng) -> Vec<&'a ScoredGroup> {
    let mut all: Vec<&ScoredGroup> = groups.iter().collect();
    all.shuffle(rng);
    if rule == Selection::PreferSignal {
        // Stable: keeps the shuffled order within each class.
        all.sort_by_key(|g| !g.has_signal());
    }
    all.truncate(n);
    all
}

/// `per_question` completions of every question, as text. On a GPU (a cubecl device) every
/// question is sampled in one left-padded batch; on the CPU, questions whose prompts have the same
/// length are sampled in one batch each.
pub async fn complete(
    model: &Model,
    questions: &[Question],
    per_question: usize,
    sampling: &SamplingConfig,
    device: &Device,
) -> Result<Vec<Vec<String>>, ModelError> {
    let prompts: Vec<&str> = questions.iter().map(|q| q.prompt.as_str()).collect();
    complete_prompts(model, &prompts, per_question, sampling, device).await
}

/// `per_prompt` completions of every prompt text, as text (what [`complete`] does for questions).
pub async fn complete_prompts(
    model: &Model,
    texts: &[&str],
    per_question: usize,
    sampling: &SamplingConfig,
    device: &Device,
) -> Result<Vec<Vec<String>>, ModelError> {
    let tokenizer = Tokenizer::new();
    let prompts = texts.iter().map(|text| tokenizer.prompt(text)).collect::<Result<Vec<_>, _>>()?;
    if let Some(p) = prompts.iter().find(|p| p.len() >= model.max_seq_len()) {
        return Err(ModelError::TooLong { len: p.len() + 1, max: model.max_seq_len() });
    }
    // On a GPU a launch costs more than the arithmetic: every prompt of the round in one
    // left-padded batch (one launch per layer and token for the whole round). The CPU keeps one
    // batch per prompt length, where padding would only add arithmetic (and the learning runs in
    // docs/learning.md stay reproducible). `generate` bounds each row by its own room.
    let batches: Vec<(u64, Vec<usize>)> = if tabswarm_kernels::fused::runs_fused(device) {
        vec![(sampling.seed, (0..prompts.len()).collect())]
    } else {
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in prompts.iter().enumerate() {
            by_len.entry(p.len()).or_default().push(i);
        }
        by_len.into_iter().map(|(len, members)| (sampling.seed ^ len as u64, members)).collect()
    };
    let mut out = vec![Vec::new(); texts.len()];
    for (seed, members) in batches.into_iter().filter(|(_, members)| !members.is_empty()) {
        let rows: Vec<Vec<u32>> =
            members.iter().flat_map(|&i| std::iter::repeat_n(prompts[i].clone(), per_question)).collect();
        let drawn = sample(model, &rows, &SamplingConfig { seed, ..sampling.clone() }, device).await?;
        for (k, &i) in members.iter().enumerate() {
            for tokens in &drawn[k * per_question..(k + 1) * per_question] {
                out[i].push(tokenizer.decode(tokens)?);
            }
        }
    }
    Ok(out)
}

/// Greedy accuracy per family on `per_family` evaluation questions (seeds from [`EVAL_SEED_BASE`]).
pub async fn evaluate(
    model: &Model,
    families: &[Family],
    difficulty: u8,
    per_family: usize,
    device: &Device,
) -> Result<BTreeMap<Family, f32>, ModelError> {
    let mut questions = Vec::with_capacity(families.len() * per_family);
    for &family in families {
        for k in 0..per_family as u64 {
            questions.push(
                generate(family, difficulty, EVAL_SEED_BASE + k)
                    .map_err(|e| ModelError::InvalidBatch(e.to_string()))?,
            );
        }
    }
    let greedy = SamplingConfig { temperature: 0.0, max_new_tokens: 16, ..SamplingConfig::default() };
    let answers = complete(model, &questions, 1, &greedy, device).await?;
    let mut accuracy: BTreeMap<Family, f32> = BTreeMap::new();
    for (question, answer) in questions.iter().zip(answers) {
        if verify(question, &answer[0]).correct {
            *accuracy.entry(question.id.family).or_default() += 1.0 / per_family as f32;
        } else {
            accuracy.entry(question.id.family).or_default();
        }
    }
    Ok(accuracy)
}

/// A fixed held-out set: every family at each of `levels`, `per_level` questions per level (seeds
/// from [`EVAL_SEED_BASE`], which training never asks), answered greedily. The same set for every
/// configuration of an experiment, so it measures the model, not the curriculum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOut {
    pub levels: Vec<u8>,
    pub per_level: usize,
}

impl Default for HeldOut {
    fn default() -> Self {
        Self { levels: vec![1, 2, 3], per_level: 16 }
    }
}

/// Accuracy per family on the held-out set (the mean over its levels).
pub async fn heldout_accuracy(
    model: &Model,
    families: &[Family],
    heldout: &HeldOut,
    device: &Device,
) -> Result<BTreeMap<Family, f32>, ModelError> {
    let mut out: BTreeMap<Family, f32> = BTreeMap::new();
    for &level in &heldout.levels {
        for (family, a) in evaluate(model, families, level, heldout.per_level, device).await? {
            *out.entry(family).or_default() += a / heldout.levels.len() as f32;
        }
    }
    Ok(out)
}

/// The mean of per-family accuracies.
pub fn mean_accuracy(accuracy: &BTreeMap<Family, f32>) -> f32 {
    if accuracy.is_empty() { 0.0 } else { accuracy.values().sum::<f32>() / accuracy.len() as f32 }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
