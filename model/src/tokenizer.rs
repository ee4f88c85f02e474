//! The character tokenizer for the task alphabet, versioned so a checkpoint records which one it
//! was trained with.
//!
//! One token per character of [`ALPHABET`], plus three specials: PAD (0), BOS (1), EOS (2). Rollouts
//! travel as text, so only the version and the alphabet have to match between a checkpoint and the
//! code that loads it; [`Tokenizer::fingerprint`] catches an alphabet edited without a version bump.

use sha2::{Digest, Sha256};

/// Bump whenever [`ALPHABET`] or the special tokens change.
pub const TOKENIZER_VERSION: u32 = 1;
/// Padding, ignored by the loss.
pub const PAD: u32 = 0;
/// Beginning of a sequence.
pub const BOS: u32 = 1;
/// End of a completion: generation stops here.
pub const EOS: u32 = 2;
const SPECIALS: u32 = 3;

/// Digits, letters, operators and separators of the task suite (space included).
pub const ALPHABET: &str =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ +-*/%=<>()[]{},.:;?!_|#'\"^&~@$\n";

/// A character outside the alphabet, or a token id outside the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    #[error("character {character:?} at position {position} is not in the task alphabet")]
    UnknownCharacter { character: char, position: usize },
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    UnknownToken { id: u32, vocab_size: usize },
}

/// Maps text to token ids and back.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    chars: Vec<char>,
    /// ASCII lookup: index by byte, value is id + 1 (0 means absent).
    ascii: [u32; 128],
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    pub fn new() -> Self {
        let chars: Vec<char> = ALPHABET.chars().collect();
        let mut ascii = [0u32; 128];
        for (i, c) in chars.iter().enumerate() {
            ascii[*c as usize] = SPECIALS + i as u32 + 1;
        }
        Self { chars, ascii }
    }

    /// Number of token ids, specials included.
    pub fn vocab_size(&self) -> usize {
        SPECIALS as usize + self.chars.len()
    }

    /// Hash of the version and alphabet, recorded in checkpoints.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(TOKENIZER_VERSION.to_le_bytes());
        hasher.update(ALPHABET.as_bytes());
        hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Token ids of `text`, without BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        text.chars()
            .enumerate()
            .map(|(position, character)| {
                let id = if character.is_ascii() { self.ascii[character as usize] } else { 0 };
                if id == 0 { Err(TokenizeError::UnknownCharacter { character, position }) } else { Ok(id - 1) }
            })
            .collect()
    }

    /// BOS and the tokens of `prompt`: what generation continues.
    pub fn prompt(&self, prompt: &str) -> Result<Vec<u32>, TokenizeError> {
        let mut ids = Vec::with_capacity(prompt.len() + 1);
        ids.push(BOS);
        ids.extend(self.encode(prompt)?);
        Ok(ids)
    }

    /// A training row `BOS prompt completion EOS`, with the prompt's length (BOS included): the
    /// positions before it are not trained on.
    pub fn example(&self, prompt: &str, completion: &str) -> Result<(Vec<u32>, usize), TokenizeError> {
        let mut ids = self.prompt(prompt)?;
        let prompt_len = ids.len();
        ids.extend(self.encode(completion)?);
        ids.push(EOS);
        Ok((ids, prompt_len))
    }

    /// Text of `ids`: skips PAD and BOS, stops at the first EOS.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizeError> {
        let mut text = String::with_capacity(ids.len());
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => {}
                _ => {
                    let c = self
                        .chars
                        .get((id - SPECIALS) as usize)
                        .ok_or(TokenizeError::UnknownToken { id, vocab_size: self.vocab_size() })?;
                    text.push(*c);
                }
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_whole_alphabet() {
        let tok = Tokenizer::new();
        let ids = tok.encode(ALPHABET).expect("alphabet encodes");
        assert_eq!(ids.len(), ALPHABET.chars().count());
        assert!(ids.iter().all(|&id| id >= SPECIALS && (id as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).expect("decodes"), ALPHABET);
        assert_eq!(tok.encode("12+7=19").expect("encodes"), vec![4, 5, 66, 10, 71, 4, 12]);
    }

    #[test]
    fn alphabet_has_no_duplicates() {
        let mut chars: Vec<char> = ALPHABET.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        assert_eq!(chars.len(), ALPHABET.chars().count());
    }

    #[test]
    fn decode_skips_pad_bos_and_stops_at_eos() {
        let tok = Tokenizer::new();
        let mut ids = vec![BOS];
        ids.extend(tok.encode("42").expect("encodes"));
        ids.extend([EOS, 5, 6]);
        assert_eq!(tok.decode(&[PAD, PAD]).expect("empty"), "");
        assert_eq!(tok.decode(&ids).expect("decodes"), "42");
    }

    #[test]
    fn prompts_and_training_rows_are_framed_with_bos_and_eos() {
        let tok = Tokenizer::new();
        let prompt = tok.prompt("9-2=").expect("prompt");
        assert_eq!(prompt[0], BOS);
        assert_eq!(&prompt[1..], tok.encode("9-2=").expect("encodes").as_slice());
        let (row, prompt_len) = tok.example("9-2=", "7").expect("row");
        assert_eq!(prompt_len, 5);
        assert_eq!(row[..prompt_len], prompt[..]);
        assert_eq!(row[prompt_len..], [tok.encode("7").expect("encodes")[0], EOS]);
        assert_eq!(tok.example("1+1=", "é"), Err(TokenizeError::UnknownCharacter { character: 'é', position: 0 }));
    }

    #[test]
    fn bad_input_is_named() {
        let tok = Tokenizer::new();
        assert_eq!(tok.encode("1+é"), Err(TokenizeError::UnknownCharacter { character: 'é', position: 2 }));
        assert_eq!(
            tok.encode("\u{7f}").expect_err("DEL").to_string(),
            "character '\\u{7f}' at position 0 is not in the task alphabet"
        );
        let err = tok.decode(&[500]).expect_err("out of range");
        assert_eq!(err, TokenizeError::UnknownToken { id: 500, vocab_size: tok.vocab_size() });
    }

    #[test]
    fn fingerprint_is_stable_for_a_version() {
        assert_eq!(Tokenizer::new().fingerprint(), Tokenizer::new().fingerprint());
        assert_eq!(Tokenizer::new().fingerprint().len(), 16);
    }
}
