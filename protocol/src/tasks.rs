//! The verifiable task suite: procedural question families the swarm learns, each with difficulty
//! levels, a generator that is a pure function of (family, difficulty, seed, suite version), and a
//! verifier that takes any string.
//!
//! A question travels as its [`QuestionId`] only; every party (the tab that asked it, a tab that
//! receives the rollout, the relay that records it) regenerates the question from the id and
//! re-checks the answer itself, so no reward is ever taken on trust.
//!
//! The generator draws from [`SplitMix64`], written out here rather than taken from `rand`, so the
//! question for an id can never change under a dependency upgrade: only a [`SUITE_VERSION`] bump
//! changes questions, and `questions_are_pinned` holds the suite to that.

use std::fmt;

use serde::{Deserialize, Serialize};

mod pose;
pub use pose::{MAX_POSED_BYTES, PoseError, Posed, pose, verify_posed};

/// Version of the generators and verifiers. Bump on any change to what an id generates or how an
/// answer is scored; ids of other versions are refused, not misread.
pub const SUITE_VERSION: u32 = 1;
/// Lowest difficulty level.
pub const MIN_DIFFICULTY: u8 = 1;
/// Highest difficulty level.
pub const MAX_DIFFICULTY: u8 = 5;
/// The level the warm start and the swarm's default training aim at.
pub const MID_DIFFICULTY: u8 = 3;
/// An answer longer than this (in bytes) is not read at all and scores 0.
pub const MAX_ANSWER_BYTES: usize = 256;
/// Reward for a correct answer.
pub const CORRECT_REWARD: f32 = 1.0;
/// Reward for an answer in the expected shape (e.g. only digits), correct or not.
pub const FORMAT_REWARD: f32 = 0.1;

/// A question family. The names are the wire names (snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `"47+385="` → `"432"`; operands of up to `difficulty` digits.
    Add,
    /// `"385-47="` → `"338"`; never negative.
    Sub,
    /// `"385*7="` → `"2695"`; a `difficulty`-digit number times one digit.
    MulDigit,
    /// `"s:3141="` → `"1134"`; `difficulty + 2` digits sorted ascending.
    SortDigits,
    /// `"r:abcd="` → `"dcba"`; `difficulty + 2` letters reversed.
    Reverse,
    /// `"b:13="` → `"1101"`; a number below `2^(2·difficulty + 2)` in binary.
    ToBinary,
    /// `"c:47,385="` → `"<"`; two numbers of up to `difficulty` digits compared (`<`, `=` or `>`).
    Compare,
    /// `"3x+4=19;x="` → `"5"`; a linear equation with a whole-number solution.
    Linear,
}

impl Family {
    /// Every family, in wire order.
    pub const ALL: [Family; 8] = [
        Family::Add,
        Family::Sub,
        Family::MulDigit,
        Family::SortDigits,
        Family::Reverse,
        Family::ToBinary,
        Family::Compare,
        Family::Linear,
    ];

    /// The wire name (`"mul_digit"`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Add => "add",
            Family::Sub => "sub",
            Family::MulDigit => "mul_digit",
            Family::SortDigits => "sort_digits",
            Family::Reverse => "reverse",
            Family::ToBinary => "to_binary",
            Family::Compare => "compare",
            Family::Linear => "linear",
        }
    }

    /// Position in [`Family::ALL`].
    pub fn index(self) -> usize {
        Family::ALL.iter().position(|&f| f == self).unwrap_or(0)
    }

    /// What an answer must look like to earn the format reward.
    fn well_formed(self, answer: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            Family::Add | Family::Sub | Family::MulDigit | Family::SortDigits | Family::Linear => digits(answer),
            Family::ToBinary => digits(answer) && answer.bytes().all(|b| b == b'0' || b == b'1'),
            Family::Reverse => {
                !answer.is_empty() && answer.len() <= 16 && answer.bytes().all(|b| b.is_ascii_lowercase())
            }
            Family::Compare => matches!(answer, "<" | "=" | ">"),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Family {
    type Err = TaskError;

    fn from_str(name: &str) -> Result<Self, TaskError> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| TaskError::UnknownFamily(name.chars().take(40).collect()))
    }
}

/// Everything that identifies a question: any party regenerates it from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuestionId {
    pub family: Family,
    pub difficulty: u8,
    pub seed: u64,
    /// The [`SUITE_VERSION`] that generated it.
    pub suite: u32,
}

impl QuestionId {
    /// The id of a question of this build's suite.
    pub fn new(family: Family, difficulty: u8, seed: u64) -> Self {
        Self { family, difficulty, seed, suite: SUITE_VERSION }
    }
}

impl fmt::Display for QuestionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/d{}/{}@v{}", self.family, self.difficulty, self.seed, self.suite)
    }
}

/// A generated question: the prompt the model continues and the answer it should produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: QuestionId,
    /// What the model sees, ending in `=`.
    pub prompt: String,
    /// The one correct answer text.
    pub answer: String,
}

/// How an answer scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `CORRECT_REWARD` if correct, plus `FORMAT_REWARD` if well formed.
    pub reward: f32,
    pub correct: bool,
    pub well_formed: bool,
}

impl Score {
    const ZERO: Score = Score { reward: 0.0, correct: false, well_formed: false };
}

/// An id that does not name a question of this suite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("difficulty {0} is outside {MIN_DIFFICULTY}..={MAX_DIFFICULTY}")]
    Difficulty(u8),
    #[error("question is from task suite version {found}; this build generates version {SUITE_VERSION}")]
    SuiteVersion { found: u32 },
    #[error("no task family is called {0:?}")]
    UnknownFamily(String),
}

/// The question `family` at `difficulty` for `seed`, from this build's suite.
pub fn generate(family: Family, difficulty: u8, seed: u64) -> Result<Question, TaskError> {
    regenerate(&QuestionId::new(family, difficulty, seed))
}

/// The question an id names; refuses ids of another suite version or an unknown difficulty.
pub fn regenerate(id: &QuestionId) -> Result<Question, TaskError> {
    if id.suite != SUITE_VERSION {
        return Err(TaskError::SuiteVersion { found: id.suite });
    }
    if !(MIN_DIFFICULTY..=MAX_DIFFICULTY).contains(&id.difficulty) {
        return Err(TaskError::Difficulty(id.difficulty));
    }
    let d = u32::from(id.difficulty);
    // Family and difficulty select disjoint streams for the same seed.
    let mut rng = SplitMix64::new(id.seed ^ ((id.family.index() as u64) << 56) ^ (u64::from(id.difficulty) << 48));
    let up_to_digits = |rng: &mut SplitMix64, digits: u32| rng.below(10u64.pow(digits));
    let (prompt, answer) = match id.family {
        Family::Add => {
            let (a, b) = (up_to_digits(&mut rng, d), up_to_digits(&mut rng, d));
            (format!("{a}+{b}="), (a + b).to_string())
        }
        Family::Sub => {
            let (x, y) = (up_to_digits(&mut rng, d), up_to_digits(&mut rng, d));
            let (a, b) = (x.max(y), x.min(y));
            (format!("{a}-{b}="), (a - b).to_string())
        }
        Family::MulDigit => {
            let (a, b) = (up_to_digits(&mut rng, d), 2 + rng.below(8));
            (format!("{a}*{b}="), (a * b).to_string())
        }
        Family::SortDigits => {
            let digits: Vec<u8> = (0..d + 2).map(|_| b'0' + rng.below(10) as u8).collect();
            let mut sorted = digits.clone();
            sorted.sort_unstable();
            (format!("s:{}=", ascii(&digits)), ascii(&sorted))
        }
        Family::Reverse => {
            let letters: Vec<u8> = (0..d + 2).map(|_| b'a' + rng.below(26) as u8).collect();
            let reversed: Vec<u8> = letters.iter().rev().copied().collect();
            (format!("r:{}=", ascii(&letters)), ascii(&reversed))
        }
        Family::ToBinary => {
            let n = rng.below(1u64 << (2 * d + 2));
            (format!("b:{n}="), format!("{n:b}"))
        }
        Family::Compare => {
            let a = up_to_digits(&mut rng, d);
            // One time in four the numbers are equal, so "=" is a real answer.
            let b = if rng.below(4) == 0 { a } else { up_to_digits(&mut rng, d) };
            let answer = match a.cmp(&b) {
                std::cmp::Ordering::Less => "<",
                std::cmp::Ordering::Equal => "=",
                std::cmp::Ordering::Greater => ">",
            };
            (format!("c:{a},{b}="), answer.to_string())
        }
        Family::Linear => {
            let a = 2 + rng.below(u64::from(d) + 2);
            let x = rng.below(10 * u64::from(d));
            let b = up_to_digits(&mut rng, d.min(3));
            (format!("{a}x+{b}={};x=", a * x + b), x.to_string())
        }
    };
    Ok(Question { id: *id, prompt, answer })
}

/// Scores `answer` (the model's completion, as text) against `question`. Takes any string: an
/// empty, huge, non-ASCII or control-character answer scores 0 rather than failing. Surrounding
/// whitespace is not forgiven: the completion must be the answer.
pub fn verify(question: &Question, answer: &str) -> Score {
    score(question.id.family, &question.answer, answer)
}

/// How much of `question`'s answer `answer` gets right, from 0 to 1: the characters that match
/// the expected answer position by position, aligned at the right (units digit with units digit,
/// lowest bit with lowest bit), over the longer of the two lengths; 0 for an answer that is not
/// well formed, 1 exactly when [`verify`] calls it correct. Not part of the reward the swarm
/// credits and re-verifies: a learner may add it to its own training reward as a denser signal on
/// the arithmetic families, where a group of wrong answers otherwise scores all zeros
/// (`RlConfig::partial_credit` in `tabswarm-learn`; `docs/learning.md`).
pub fn partial_credit(question: &Question, answer: &str) -> f32 {
    if !verify(question, answer).well_formed {
        return 0.0;
    }
    let (expected, given) = (question.answer.as_bytes(), answer.as_bytes());
    let matched = expected.iter().rev().zip(given.iter().rev()).filter(|(a, b)| a == b).count();
    matched as f32 / expected.len().max(given.len()).max(1) as f32
}

/// `answer` scored against the `expected` answer of a `family` question.
fn score(family: Family, expected: &str, answer: &str) -> Score {
    if answer.len() > MAX_ANSWER_BYTES || !answer.is_ascii() {
        return Score::ZERO;
    }
    let well_formed = family.well_formed(answer);
    let correct = well_formed && answer == expected;
    let reward = f32::from(u8::from(correct)) * CORRECT_REWARD + f32::from(u8::from(well_formed)) * FORMAT_REWARD;
    Score { reward, correct, well_formed }
}

/// The highest reward an answer can earn.
pub const MAX_REWARD: f32 = CORRECT_REWARD + FORMAT_REWARD;

fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// SplitMix64 (Steele, Lea & Flood 2014): the suite's own generator, fixed here so an id's question
/// depends on nothing outside this file.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n ≥ 1`), by the high half of a 128-bit product.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

#[cfg(test)]
mod tests;
