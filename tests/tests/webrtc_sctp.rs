//! The patched webrtc-sctp (third_party/README.md) driven directly: a client and a server
//! association over an in-memory pipe, no network, no WebRTC above them. SCTP is what carries
//! every message between a tab (or a native WebRTC peer) and its relay.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use webrtc_sctp::association::{Association, Config};
use webrtc_sctp::chunk::chunk_payload_data::PayloadProtocolIdentifier;
use webrtc_sctp::stream::Stream;
use webrtc_util::conn::Conn;
use webrtc_util::conn::conn_pipe::pipe;

/// A connected client and server association over a pipe.
async fn associations() -> (Association, Association) {
    let (a, b) = pipe();
    let config = |conn: Arc<dyn Conn + Send + Sync>, name: &str| Config {
        net_conn: conn,
        max_receive_buffer_size: 0,
        max_message_size: 0,
        name: name.to_owned(),
    };
    let client = tokio::spawn(Association::client(config(Arc::new(a), "client")));
    let server = Association::server(config(Arc::new(b), "server")).await.expect("server association");
    let client = client.await.expect("client task").expect("client association");
    (client, server)
}

/// Waits until everything written on `stream` has been acknowledged by the other side (the
/// stream's buffered amount only falls on a SACK), for at most 30 s: several retransmission
/// timeouts, so a missing SACK shows as a retransmission, not as a timeout here.
async fn acknowledged(stream: &Stream) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream.buffered_amount() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{} bytes never acknowledged", stream.buffered_amount());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gossip message on an otherwise quiet connection is one DATA chunk, which the receiver
/// acknowledges after its 200 ms delayed-ACK timer. Before the patch that timer started only
/// once per association: after its first firing, a lone chunk was never acknowledged, so the
/// sender waited out its retransmission timeout (at least 1 s, doubling) and sent it again with
/// its congestion window cut to one packet — relays dropped forwards that waited over 1 s, and
/// deliveries stalled for seconds (the WebRTC load tests' flakes). Each message here is sent
/// alone and waited on; every one must cost the sender the same bytes: no retransmissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lone_message_is_acknowledged_without_being_sent_again() {
    let (client, server) = associations().await;
    let stream = client.open_stream(1, PayloadProtocolIdentifier::Binary).await.expect("stream");
    let message = Bytes::from_static(b"one short gossip frame, one DATA chunk");
    let mut sent = Vec::new();
    let mut received = Vec::new();
    let mut incoming = None;
    for _ in 0..4 {
        let before = client.bytes_sent();
        stream.write_sctp(&message, PayloadProtocolIdentifier::Binary).await.expect("write");
        let incoming = match &incoming {
            Some(s) => Arc::clone(s),
            None => Arc::clone(incoming.insert(server.accept_stream().await.expect("the server accepts the stream"))),
        };
        let (data, _) = incoming.read_sctp_owned().await.expect("read");
        received.push(data);
        acknowledged(&stream).await;
        sent.push(client.bytes_sent() - before);
    }
    assert!(received.iter().all(|d| d[..] == message[..]), "each message arrives whole");
    assert!(sent.iter().all(|n| *n == sent[0]), "bytes sent per message {sent:?}: a larger one was sent again");
    client.close().await.expect("close client");
    server.close().await.expect("close server");
}
