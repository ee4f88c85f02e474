//! Rollouts as they travel between peers: text plus the ids to re-check it — never a reward.
//!
//! A [`Rollout`] is one completion of one question by one peer's policy. Peers share them in
//! [`RolloutGroup`]s (the G completions of one question, which is what a GRPO step needs). A
//! receiver calls [`score_group`], which checks the limits, regenerates the question from its id
//! and scores every completion with the shared verifier; anything that fails is dropped with a
//! [`DropReason`] the receiver counts.

use serde::{Deserialize, Serialize};

use crate::tasks::{Question, QuestionId, Score, TaskError, regenerate, verify};

/// Longest completion text accepted from another peer, in bytes.
pub const MAX_COMPLETION_BYTES: usize = 64;
/// Fewest completions in a group (GRPO compares completions of one question).
pub const MIN_GROUP_SIZE: usize = 2;
/// Most completions in a group.
pub const MAX_GROUP_SIZE: usize = 32;
/// Longest peer name accepted.
pub const MAX_PEER_BYTES: usize = 128;

/// One completion of one question, as any party can re-check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub question: QuestionId,
    /// What the policy wrote after the prompt (up to, not including, its end token).
    pub completion: String,
    /// Who generated it.
    pub peer: String,
    /// How many training steps the generating policy had taken.
    pub policy_version: u64,
}

/// The completions one peer drew for one question with one policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutGroup {
    pub question: QuestionId,
    pub peer: String,
    pub policy_version: u64,
    pub completions: Vec<String>,
    /// The rewards the publisher's verifier gave each completion — a claim, never trusted:
    /// receivers re-score and refuse a group whose claim disagrees ([`DropReason::RewardMismatch`]).
    /// Empty when the publisher makes no claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewards: Vec<f32>,
}

impl RolloutGroup {
    /// The group's records one by one.
    pub fn rollouts(&self) -> impl Iterator<Item = Rollout> + '_ {
        self.completions.iter().map(|completion| Rollout {
            question: self.question,
            completion: completion.clone(),
            peer: self.peer.clone(),
            policy_version: self.policy_version,
        })
    }
}

/// Why a received group was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DropReason {
    #[error("question {id} does not regenerate: {reason}")]
    UnknownQuestion { id: QuestionId, reason: TaskError },
    #[error("a completion of {bytes} bytes exceeds the limit of {MAX_COMPLETION_BYTES}")]
    CompletionTooLong { bytes: usize },
    #[error("a group of {size} completions is outside {MIN_GROUP_SIZE}..={MAX_GROUP_SIZE}")]
    GroupSize { size: usize },
    #[error("a peer name of {bytes} bytes exceeds the limit of {MAX_PEER_BYTES}")]
    PeerTooLong { bytes: usize },
    #[error("completion {index} claims reward {claimed}, the verifier gives {verified}")]
    RewardMismatch { index: usize, claimed: f32, verified: f32 },
    #[error("{claimed} rewards claimed for {completions} completions")]
    RewardCount { claimed: usize, completions: usize },
}

/// A group that passed the checks, with the rewards the receiver computed itself. Serialisable so
/// the page can hand the worker what its node verified instead of the raw text (never sent over
/// the wire: a receiver always scores for itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredGroup {
    pub group: RolloutGroup,
    pub question: Question,
    pub scores: Vec<Score>,
}

impl ScoredGroup {
    pub fn rewards(&self) -> Vec<f32> {
        self.scores.iter().map(|s| s.reward).collect()
    }

    /// Whether the rewards differ (a group whose completions all scored the same teaches GRPO nothing).
    pub fn has_signal(&self) -> bool {
        self.scores.windows(2).any(|w| w[0].reward != w[1].reward)
    }
}

/// Checks a group against the limits, regenerates its question and scores every completion.
pub fn score_group(group: RolloutGroup) -> Result<ScoredGroup, DropReason> {
    let size = group.completions.len();
    if !(MIN_GROUP_SIZE..=MAX_GROUP_SIZE).contains(&size) {
        return Err(DropReason::GroupSize { size });
    }
    if group.peer.len() > MAX_PEER_BYTES {
        return Err(DropReason::PeerTooLong { bytes: group.peer.len() });
    }
    if let Some(long) = group.completions.iter().find(|c| c.len() > MAX_COMPLETION_BYTES) {
        return Err(DropReason::CompletionTooLong { bytes: long.len() });
    }
    let question =
        regenerate(&group.question).map_err(|reason| DropReason::UnknownQuestion { id: group.question, reason })?;
    if !group.rewards.is_empty() && group.rewards.len() != size {
        return Err(DropReason::RewardCount { claimed: group.rewards.len(), completions: size });
    }
    let scores: Vec<Score> = group.completions.iter().map(|c| verify(&question, c)).collect();
    for (index, (claimed, score)) in group.rewards.iter().zip(&scores).enumerate() {
        // Exact: the claim comes from the same shared verifier, so any difference is a lie or a
        // different verifier version.
        if claimed.to_bits() != score.reward.to_bits() {
            return Err(DropReason::RewardMismatch { index, claimed: *claimed, verified: score.reward });
        }
    }
    Ok(ScoredGroup { group, question, scores })
}

/// Received groups dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    pub unknown_question: u64,
    pub too_long: u64,
    pub group_size: u64,
    /// Claimed rewards the verifier disagrees with.
    #[serde(default)]
    pub reward_mismatch: u64,
}

impl DropCounts {
    pub fn count(&mut self, reason: &DropReason) {
        match reason {
            DropReason::UnknownQuestion { .. } => self.unknown_question += 1,
            DropReason::CompletionTooLong { .. } | DropReason::PeerTooLong { .. } => self.too_long += 1,
            DropReason::GroupSize { .. } => self.group_size += 1,
            DropReason::RewardMismatch { .. } | DropReason::RewardCount { .. } => self.reward_mismatch += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.unknown_question + self.too_long + self.group_size + self.reward_mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Family, SUITE_VERSION, generate};

    fn group(completions: &[&str]) -> RolloutGroup {
        RolloutGroup {
            question: QuestionId::new(Family::Add, 2, 5),
            peer: "peer-a".into(),
            policy_version: 3,
            completions: completions.iter().map(|c| c.to_string()).collect(),
            rewards: Vec::new(),
        }
    }

    #[test]
    fn the_receiver_computes_the_rewards() {
        let answer = generate(Family::Add, 2, 5).expect("question").answer;
        let scored = score_group(group(&[&answer, "0", "", "x"])).expect("valid");
        assert_eq!(scored.rewards(), vec![1.1, 0.1, 0.0, 0.0]);
        assert!(scored.has_signal());
        assert!(!score_group(group(&["0", "1"])).expect("valid").has_signal());
        let records: Vec<Rollout> = scored.group.rollouts().collect();
        assert_eq!(records.len(), 4);
        assert_eq!((records[0].completion.as_str(), records[0].policy_version), (answer.as_str(), 3));
    }

    #[test]
    fn bad_groups_are_dropped_and_counted() {
        let mut counts = DropCounts::default();
        let mut future = group(&["1", "2"]);
        future.question.suite = SUITE_VERSION + 1;
        let mut hard = group(&["1", "2"]);
        hard.question.difficulty = 9;
        let long = "9".repeat(MAX_COMPLETION_BYTES + 1);
        let mut loud = group(&["1", "2"]);
        loud.peer = "p".repeat(MAX_PEER_BYTES + 1);
        let cases = [
            (future, "does not regenerate: question is from task suite version"),
            (hard, "does not regenerate: difficulty 9 is outside 1..=5"),
            (group(&["1", &long]), "a completion of 65 bytes exceeds the limit of 64"),
            (group(&["1"]), "a group of 1 completions is outside 2..=32"),
            (group(&vec!["1"; 33]), "a group of 33 completions is outside 2..=32"),
            (loud, "a peer name of 129 bytes exceeds the limit of 128"),
        ];
        for (bad, message) in cases {
            let reason = score_group(bad).expect_err("dropped");
            assert!(reason.to_string().contains(message), "{reason}");
            counts.count(&reason);
        }
        assert_eq!(counts, DropCounts { unknown_question: 2, too_long: 2, group_size: 2, reward_mismatch: 0 });
        assert_eq!(counts.total(), 6);
    }

    #[test]
    fn a_claimed_reward_the_verifier_disagrees_with_drops_the_group() {
        let answer = generate(Family::Add, 2, 5).expect("question").answer;
        let honest = RolloutGroup { rewards: vec![1.1, 0.1], ..group(&[&answer, "0"]) };
        assert_eq!(score_group(honest.clone()).expect("agrees").rewards(), vec![1.1, 0.1]);
        let inflated = RolloutGroup { rewards: vec![1.1, 1.1], ..honest.clone() };
        let reason = score_group(inflated).expect_err("disagrees");
        assert_eq!(reason, DropReason::RewardMismatch { index: 1, claimed: 1.1, verified: 0.1 });
        assert_eq!(reason.to_string(), "completion 1 claims reward 1.1, the verifier gives 0.1");
        let short = RolloutGroup { rewards: vec![1.1], ..honest };
        assert_eq!(score_group(short), Err(DropReason::RewardCount { claimed: 1, completions: 2 }));
        let mut counts = DropCounts::default();
        counts.count(&DropReason::RewardCount { claimed: 1, completions: 2 });
        assert_eq!((counts.reward_mismatch, counts.total()), (1, 1));
    }
}
