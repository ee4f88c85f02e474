//! Questions a person types (the page's *Try the model*): recognised as one of the suite's
//! families by their form, with the answer the suite's verifier expects. A typed question has no
//! [`QuestionId`](super::QuestionId) — it was not generated — so it never travels as a rollout;
//! it only lets someone see what the model answers and whether that is right.

use serde::{Deserialize, Serialize};

use super::{Family, Score};

/// The longest question text read, in bytes (the models' contexts are shorter still).
pub const MAX_POSED_BYTES: usize = 40;
/// The longest number read in a typed question, in digits (keeps every sum inside `u64`).
const MAX_NUMBER_DIGITS: usize = 18;

/// A typed question in the suite's canonical form (`12+34=`), with its family and answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posed {
    pub family: Family,
    /// What the model is given: the question as the suite writes it, ending in `=`.
    pub prompt: String,
    /// The one correct answer.
    pub answer: String,
}

/// Why a typed text is not a question of the suite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoseError {
    #[error("type a question, such as 12+34= or r:abc=")]
    Empty,
    #[error("the question is {len} characters long; at most {MAX_POSED_BYTES} are read")]
    TooLong { len: usize },
    #[error("{0:?} is not a number of at most {MAX_NUMBER_DIGITS} digits")]
    Number(String),
    #[error("{0}")]
    Outside(&'static str),
    #[error(
        "not a question of the suite: try a+b=, a-b=, a*d= (d from 2 to 9), s:digits= (sort), r:letters= \
         (reverse), b:n= (to binary), c:a,b= (compare) or ax+b=c;x= (solve)"
    )]
    Unrecognised,
}

/// Reads a typed question. Spaces are ignored and a missing final `=` is added, so `12 + 34`
/// reads as `12+34=`.
pub fn pose(text: &str) -> Result<Posed, PoseError> {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.is_empty() {
        return Err(PoseError::Empty);
    }
    if squeezed.len() > MAX_POSED_BYTES {
        return Err(PoseError::TooLong { len: squeezed.chars().count() });
    }
    let body = squeezed.strip_suffix(";x=").or_else(|| squeezed.strip_suffix('=')).unwrap_or(&squeezed);
    let (family, prompt, answer) = if let Some(digits) = body.strip_prefix("s:") {
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PoseError::Outside("s: sorts 1 to 16 digits, as in s:3141="));
        }
        let mut sorted = digits.as_bytes().to_vec();
        sorted.sort_unstable();
        (Family::SortDigits, format!("s:{digits}="), super::ascii(&sorted))
    } else if let Some(letters) = body.strip_prefix("r:") {
        if letters.is_empty() || letters.len() > 16 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(PoseError::Outside("r: reverses 1 to 16 lowercase letters, as in r:abc="));
        }
        (Family::Reverse, format!("r:{letters}="), letters.chars().rev().collect())
    } else if let Some(n) = body.strip_prefix("b:") {
        let n = number(n)?;
        (Family::ToBinary, format!("b:{n}="), format!("{n:b}"))
    } else if let Some(pair) = body.strip_prefix("c:") {
        let (a, b) = pair.split_once(',').ok_or(PoseError::Outside("c: compares two numbers, as in c:12,7="))?;
        let (a, b) = (number(a)?, number(b)?);
        let answer = match a.cmp(&b) {
            std::cmp::Ordering::Less => "<",
            std::cmp::Ordering::Equal => "=",
            std::cmp::Ordering::Greater => ">",
        };
        (Family::Compare, format!("c:{a},{b}="), answer.to_owned())
    } else if let Some((left, c)) = body.split_once('=') {
        // ax+b=c, solved for a whole x.
        let (a, b) =
            left.split_once("x+").ok_or(PoseError::Outside("an equation is written ax+b=c;x=, as in 3x+4=19;x="))?;
        let (a, b, c) = (number(a)?, number(b)?, number(c)?);
        if a == 0 || c < b || (c - b) % a != 0 {
            return Err(PoseError::Outside("the suite's equations have a whole, non-negative x"));
        }
        (Family::Linear, format!("{a}x+{b}={c};x="), ((c - b) / a).to_string())
    } else if let Some((a, b)) = body.split_once('+') {
        let (a, b) = (number(a)?, number(b)?);
        (Family::Add, format!("{a}+{b}="), (a + b).to_string())
    } else if let Some((a, b)) = body.split_once('-') {
        let (a, b) = (number(a)?, number(b)?);
        if a < b {
            return Err(PoseError::Outside("the suite subtracts the smaller number from the larger: a-b with a ≥ b"));
        }
        (Family::Sub, format!("{a}-{b}="), (a - b).to_string())
    } else if let Some((a, b)) = body.split_once('*') {
        let (a, b) = (number(a)?, number(b)?);
        if !(2..=9).contains(&b) {
            return Err(PoseError::Outside("the suite multiplies by one digit from 2 to 9: a*d="));
        }
        (Family::MulDigit, format!("{a}*{b}="), (a * b).to_string())
    } else {
        return Err(PoseError::Unrecognised);
    };
    Ok(Posed { family, prompt, answer })
}

/// Scores the model's `answer` to a typed question as [`super::verify`] scores a generated one.
pub fn verify_posed(posed: &Posed, answer: &str) -> Score {
    super::score(posed.family, &posed.answer, answer)
}

fn number(text: &str) -> Result<u64, PoseError> {
    if text.is_empty() || text.len() > MAX_NUMBER_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PoseError::Number(text.chars().take(24).collect()));
    }
    text.parse().map_err(|_| PoseError::Number(text.to_owned()))
}
