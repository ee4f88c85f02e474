//! The relay's WebRTC listener must never negotiate an SRTP profile its SRTP stack cannot key.
//!
//! webrtc 0.12 (under libp2p-webrtc) offers `SRTP_AEAD_AES_256_GCM` by default, but webrtc-srtp
//! 0.14 derives keys with AES-128 only and panics on that profile's 32-byte master key. Clients on
//! libdatachannel (js-libp2p's `@libp2p/webrtc`) prefer it, so every such dial panicked a relay
//! task and then timed out. The patched webrtc-dtls in `third_party/` never agrees to the profile
//! (it still lists it in a client hello, so the test clients below offer it as libdatachannel
//! does); these tests run the handshake the relay runs (it answers as the DTLS server) against
//! clients with those preferences.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use webrtc_dtls::config::Config;
use webrtc_dtls::conn::DTLSConn;
use webrtc_dtls::crypto::Certificate;
use webrtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile as Profile;

/// What webrtc 0.12 configures the relay's DTLS with (`default_srtp_protection_profiles`).
const WEBRTC_DEFAULT: [Profile; 4] = [
    Profile::Srtp_Aead_Aes_128_Gcm,
    Profile::Srtp_Aead_Aes_256_Gcm,
    Profile::Srtp_Aes128_Cm_Hmac_Sha1_80,
    Profile::Srtp_Aes128_Cm_Hmac_Sha1_32,
];

/// libdatachannel's order (libsrtp built with GCM): the 256-bit profile first.
const LIBDATACHANNEL: [Profile; 3] =
    [Profile::Srtp_Aead_Aes_256_Gcm, Profile::Srtp_Aead_Aes_128_Gcm, Profile::Srtp_Aes128_Cm_Hmac_Sha1_80];

fn config(profiles: &[Profile]) -> Config {
    Config {
        certificates: vec![Certificate::generate_self_signed(vec!["localhost".to_owned()]).expect("certificate")],
        srtp_protection_profiles: profiles.to_vec(),
        // WebRTC checks the certificate's fingerprint from the SDP instead of a CA.
        insecure_skip_verify: true,
        ..Config::default()
    }
}

type Outcome = Result<Profile, String>;

/// One handshake over loopback UDP: a client offering `client` against a server configured like
/// the relay. Returns what each side negotiated, or its error.
async fn handshake(client: &[Profile]) -> (Outcome, Outcome) {
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    a.connect(b.local_addr().expect("addr")).await.expect("connect");
    b.connect(a.local_addr().expect("addr")).await.expect("connect");
    let (client_cfg, server_cfg) = (config(client), config(&WEBRTC_DEFAULT));
    let client = tokio::spawn(async move { DTLSConn::new(Arc::new(a), client_cfg, true, None).await });
    let server = tokio::spawn(async move { DTLSConn::new(Arc::new(b), server_cfg, false, None).await });
    (finished(client).await, finished(server).await)
}

async fn finished(side: tokio::task::JoinHandle<Result<DTLSConn, webrtc_dtls::Error>>) -> Outcome {
    match tokio::time::timeout(Duration::from_secs(20), side).await {
        Err(_) => Err("no answer within 20 s".to_owned()),
        Ok(Err(join)) => Err(format!("the handshake task failed: {join}")),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Ok(Ok(conn))) => Ok(conn.selected_srtpprotection_profile()),
    }
}

#[tokio::test]
async fn a_client_preferring_aes_256_gcm_gets_aes_128_gcm_from_the_relay() {
    let (client, server) = handshake(&LIBDATACHANNEL).await;
    assert_eq!(client, Ok(Profile::Srtp_Aead_Aes_128_Gcm), "the client's side");
    assert_eq!(server, Ok(Profile::Srtp_Aead_Aes_128_Gcm), "the relay's side");
}

#[tokio::test]
async fn chromium_s_preference_is_unchanged() {
    // Chromium offers AES-128-GCM first; tabs get what they always got.
    let chromium =
        [Profile::Srtp_Aead_Aes_128_Gcm, Profile::Srtp_Aead_Aes_256_Gcm, Profile::Srtp_Aes128_Cm_Hmac_Sha1_80];
    let (client, server) = handshake(&chromium).await;
    assert_eq!(client, Ok(Profile::Srtp_Aead_Aes_128_Gcm));
    assert_eq!(server, Ok(Profile::Srtp_Aead_Aes_128_Gcm));
}

#[tokio::test]
async fn a_client_that_offers_only_aes_256_gcm_gets_an_error_not_a_panic() {
    let (client, server) = handshake(&[Profile::Srtp_Aead_Aes_256_Gcm]).await;
    // The relay finds no profile it agrees to, ends the handshake with a fatal alert and says why.
    let err = server.expect_err("the relay refuses the handshake");
    assert!(err.contains("SRTP") && err.contains("no matching profiles"), "the relay's error names SRTP: {err}");
    let err = client.expect_err("the client is told");
    assert!(err.contains("Alert is Fatal"), "the client gets the relay's alert: {err}");
}
