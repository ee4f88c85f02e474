//! The page and the base checkpoint built into the binary: `cargo xtask dist` builds the relay with
//! the `embedded` feature, so an operator installs one file and needs neither `web/dist` nor a
//! checkpoint beside it (`build.rs` writes the table). At start every embedded file is hashed
//! again and compared with the hash it had at build time, so a damaged binary says so instead of
//! serving a broken page; the base then passes the same frame and payload checks as a file.

use axum::body::Bytes;

use crate::error::StartError;
use crate::{AssetStore, BaseCheckpoint};

#[cfg(feature = "embedded")]
include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Whether this binary carries the page and the base checkpoint.
pub const EMBEDDED: bool = cfg!(feature = "embedded");

/// The page built into this binary, every file checked against its build-time hash.
pub fn page() -> Result<AssetStore, StartError> {
    #[cfg(feature = "embedded")]
    {
        AssetStore::from_files(checked(PAGE)?)
    }
    #[cfg(not(feature = "embedded"))]
    {
        Err(StartError::NotEmbedded("page"))
    }
}

/// The base checkpoint built into this binary, checked against its build-time hash and verified.
pub fn base() -> Result<BaseCheckpoint, StartError> {
    #[cfg(feature = "embedded")]
    {
        let (name, bytes) = checked(&[BASE])?.remove(0);
        BaseCheckpoint::from_bytes(bytes, std::path::Path::new(&format!("{name} (built into this binary)")))
    }
    #[cfg(not(feature = "embedded"))]
    {
        Err(StartError::NotEmbedded("base checkpoint"))
    }
}

/// The files with their bytes (not copied), or the first whose bytes no longer hash to what they
/// hashed to when the binary was built.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))] // only the tests call it without the page inside
fn checked<'a>(files: &[(&'a str, &'static [u8], &str)]) -> Result<Vec<(&'a str, Bytes)>, StartError> {
    files
        .iter()
        .map(|&(name, bytes, expected)| {
            let found = tabswarm_protocol::checkpoint::sha256_hex(bytes);
            if found == expected {
                Ok((name, Bytes::from_static(bytes)))
            } else {
                Err(StartError::EmbeddedDamaged { name: name.to_owned(), expected: expected.to_owned(), found })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_bytes_changed_since_the_build_is_named_and_refused() {
        let good = tabswarm_protocol::checkpoint::sha256_hex(b"<!doctype html>");
        let files = [("index.html", b"<!doctype html>".as_slice(), good.as_str())];
        let kept = checked(&files).expect("unchanged");
        assert_eq!(kept, vec![("index.html", Bytes::from_static(b"<!doctype html>"))]);
        let damaged = [("index.html", b"<!doctype html>".as_slice(), good.as_str()), ("main.js", b"x", good.as_str())];
        let err = checked(&damaged).expect_err("main.js changed").to_string();
        assert!(err.contains("main.js") && err.contains(&good) && err.contains("damaged"), "{err}");
    }

    #[test]
    fn a_binary_without_the_page_says_how_to_get_one() {
        if EMBEDDED {
            page().expect("the embedded page passes its own check");
            base().expect("the embedded base passes its own check");
        } else {
            let err = page().expect_err("nothing embedded").to_string();
            assert!(err.contains("--assets") && err.contains("cargo xtask dist"), "{err}");
            let err = base().expect_err("nothing embedded").to_string();
            assert!(err.contains("--base-checkpoint"), "{err}");
        }
    }
}
