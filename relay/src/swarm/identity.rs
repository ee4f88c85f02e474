//! The relay's persisted identity: its libp2p key (so its peer id is stable) and its WebRTC
//! certificate (so the `/certhash` in its address, which browsers dial, survives restarts).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use libp2p_webrtc::tokio::Certificate;

use crate::error::StartError;

/// File name of the libp2p key (protobuf encoding) in the data folder.
pub const KEY_FILE: &str = "peer-key";
/// File name of the WebRTC certificate and its private key (PEM) in the data folder.
pub const CERT_FILE: &str = "webrtc-cert.pem";

/// The key and certificate a relay runs with.
#[derive(Clone)]
pub struct NodeIdentity {
    pub keypair: Keypair,
    pub certificate: Certificate,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity").field("peer_id", &self.keypair.public().to_peer_id()).finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Reads the key and certificate from `dir`, creating (and saving) whichever is missing. A
    /// file that exists but cannot be read or parsed is an error, never silently replaced: the
    /// relay's address depends on it.
    pub fn load_or_create(dir: &Path) -> Result<Self, StartError> {
        let fail = |path: &Path, reason: String| StartError::Identity { path: path.to_owned(), reason };
        fs::create_dir_all(dir).map_err(|e| fail(dir, format!("cannot create the folder: {e}")))?;
        let key_path = dir.join(KEY_FILE);
        let keypair = match read_if_present(&key_path)? {
            Some(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                fail(&key_path, format!("not a libp2p key ({e}); move it away to start with a new identity"))
            })?,
            None => {
                let keypair = Keypair::generate_ed25519();
                let bytes = keypair.to_protobuf_encoding().map_err(|e| fail(&key_path, e.to_string()))?;
                write_private(&key_path, &bytes)?;
                tracing::info!(path = %key_path.display(), peer = %keypair.public().to_peer_id(), "created the relay's libp2p key");
                keypair
            }
        };
        let cert_path = dir.join(CERT_FILE);
        let certificate = match read_if_present(&cert_path)? {
            Some(bytes) => {
                let pem = String::from_utf8(bytes).map_err(|_| fail(&cert_path, "not a PEM text file".into()))?;
                Certificate::from_pem(&pem).map_err(|e| {
                    fail(&cert_path, format!("not a WebRTC certificate ({e}); move it away to make a new one (browsers then need the new address)"))
                })?
            }
            None => {
                let certificate = Certificate::generate(&mut rand08::thread_rng())
                    .map_err(|e| fail(&cert_path, format!("cannot generate: {e}")))?;
                write_private(&cert_path, certificate.serialize_pem().as_bytes())?;
                tracing::info!(path = %cert_path.display(), "created the relay's WebRTC certificate");
                certificate
            }
        };
        Ok(Self { keypair, certificate })
    }
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StartError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StartError::Identity { path: path.to_owned(), reason: format!("cannot read: {e}") }),
    }
}

/// Writes a secret: owner-only permissions, via a temporary file renamed into place so an
/// interrupted write never leaves half a key.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    let fail = |reason: String| StartError::Identity { path: path.to_owned(), reason };
    let tmp: PathBuf = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let result = match written {
        Ok(()) => fs::rename(&tmp, path).map_err(|e| fail(format!("cannot move into place: {e}"))),
        Err(e) => Err(fail(format!("cannot write: {e}{}", hint(&e)))),
    };
    if result.is_err() {
        // Leave nothing half-written behind (and no fuller disk).
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What an operator can do about a write error, where there is something to say.
fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "; the disk is full: free some space, then start the relay again",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_survives_a_restart_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeIdentity::load_or_create(dir.path()).expect("created");
        let again = NodeIdentity::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.keypair.public(), again.keypair.public());
        assert_eq!(first.certificate.fingerprint(), again.certificate.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }

        fs::write(dir.path().join(CERT_FILE), "-----BEGIN NONSENSE-----").expect("damage");
        let err = NodeIdentity::load_or_create(dir.path()).expect_err("refused").to_string();
        assert!(err.contains(CERT_FILE) && err.contains("not a WebRTC certificate"), "{err}");
        fs::write(dir.path().join(KEY_FILE), b"garbage").expect("damage");
        let err = NodeIdentity::load_or_create(dir.path()).expect_err("refused").to_string();
        assert!(err.contains(KEY_FILE) && err.contains("not a libp2p key"), "{err}");
        // Nothing was replaced.
        assert_eq!(fs::read(dir.path().join(KEY_FILE)).expect("key"), b"garbage");
    }
}
