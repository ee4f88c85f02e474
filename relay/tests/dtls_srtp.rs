//! The relay's WebRTC listener must never negotiate an SRTP profile its SRTP stack cannot key.
//!
//! webrtc 0.12 (under libp2p-webrtc) offers `SRTP_AEAD_AES_256_GCM` by default, but webrtc-srtp
//! 0.14 derives keys with AES-128 only and panics on that profile's 32-byte master key. Clients on
//! libdatachannel (js-libp2p's `@libp2p/webrtc`) prefer it, so every such dial panicked a relay
//! task and then timed out. The patched webrtc-dtls in `third_party/` never agrees to the profile
//! (it still lists it in a client hello, so the test clients below offer it as libdatachannel
//! does); these tests run the handshake the relay runs (it answers as the DTLS server) against
//! clients with those preferences.
//!
//! The same copy writes application data without its writer task's round trip per record (a CPU
//! patch, third_party/README.md); the last test checks that what it seals opens on the other side.

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

/// Two connected loopback sockets.
async fn socket_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    a.connect(b.local_addr().expect("addr")).await.expect("connect");
    b.connect(a.local_addr().expect("addr")).await.expect("connect");
    (a, b)
}

/// One handshake over loopback UDP: a client offering `client` against a server configured like
/// the relay. Returns what each side negotiated, or its error.
async fn handshake(client: &[Profile]) -> (Outcome, Outcome) {
    let (a, b) = socket_pair().await;
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

/// The patched write path (each record numbered, sealed in place and sent by the writer's own
/// task, no writer task in between): what one side writes, the other reads, byte for byte and in
/// order, at every size a record carries here — from one byte to the most the reader's datagram
/// buffer takes —, both ways; a write too large for one record is refused with the reason, and
/// the connection still carries what comes after it.
#[tokio::test]
async fn application_data_sealed_by_the_writer_opens_on_the_other_side_in_order() {
    let (a, b) = socket_pair().await;
    let (client_cfg, server_cfg) = (config(&WEBRTC_DEFAULT), config(&WEBRTC_DEFAULT));
    let client = tokio::spawn(async move { DTLSConn::new(Arc::new(a), client_cfg, true, None).await });
    let server = tokio::spawn(async move { DTLSConn::new(Arc::new(b), server_cfg, false, None).await });
    let client = Arc::new(client.await.expect("client task").expect("client handshake"));
    let server = Arc::new(server.await.expect("server task").expect("server handshake"));

    // 8192 bytes a datagram at the reader, less the record header (13), explicit nonce (8) and tag (16).
    let sizes: Vec<usize> = vec![1, 2, 15, 16, 17, 100, 1187, 1200, 4096, 8192 - 37];
    let message = |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 31 + j * 7) as u8).collect() };
    for (from, to) in [(&client, &server), (&server, &client)] {
        let expected: Vec<Vec<u8>> = (0..200).map(|i| message(i, sizes[i % sizes.len()])).collect();
        let mut buf = vec![0u8; 16384];
        // Five records in flight at a time: DTLS does not resend lost application data, and a
        // few datagrams never overflow a loopback socket's receive buffer.
        for (batch, records) in expected.chunks(5).enumerate() {
            for m in records {
                assert_eq!(from.write(m, None).await.expect("write"), m.len());
            }
            for (k, m) in records.iter().enumerate() {
                let i = batch * 5 + k;
                let n = tokio::time::timeout(Duration::from_secs(10), to.read(&mut buf, None))
                    .await
                    .unwrap_or_else(|_| panic!("record {i} did not arrive"))
                    .expect("read");
                assert_eq!(&buf[..n], &m[..], "record {i} ({} bytes)", m.len());
            }
        }
    }

    let err = client.write(&vec![0u8; 70_000], None).await.expect_err("too large for one record");
    assert!(err.to_string().contains("70000 bytes") && err.to_string().contains("one DTLS record"), "{err}");
    client.write(b"after", None).await.expect("the connection still writes");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), server.read(&mut buf, None))
        .await
        .expect("arrives")
        .expect("read");
    assert_eq!(&buf[..n], b"after");
}
