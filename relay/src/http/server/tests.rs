use std::time::Instant;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;

/// Bytes `/big` answers: far more than loopback's socket buffers hold.
const BIG: usize = 64 << 20;

/// A server of `/` ("ok") and `/big` under `limits`, its address, what it refused, and how to stop it.
async fn start(
    limits: Limits,
) -> (SocketAddr, HttpRefusals, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new().route("/", get(|| async { "ok" })).route("/big", get(|| async { vec![0u8; BIG] }));
    let refusals = HttpRefusals::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, Arc::new(limits), refusals.clone(), async move {
        let _ = stopped.await;
    }));
    (addr, refusals, stop, server)
}

/// A connection from `from` (any 127.x address is this machine's).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((from, 0))).expect("bind the client address");
    socket.connect(to).await.expect("connect")
}

/// Sends `GET path` and reads the whole answer (the server closes after it).
async fn fetch(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await.expect("an answer");
    String::from_utf8_lossy(&reply).into_owned()
}

/// Whether the server closed `stream` (EOF or reset) within `wait`, reading and dropping anything it sent.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn loopback_limited() -> Limits {
    Limits { limit_loopback: true, ..Limits::default() }
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_get_a_json_503_and_a_freed_place_is_usable_again() {
    let (addr, refusals, stop, server) = start(Limits { http_connections_per_ip: 2, ..loopback_limited() }).await;
    let mut idle = vec![connect_from([127, 0, 0, 1], addr).await, connect_from([127, 0, 0, 1], addr).await];
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect_from([127, 0, 0, 1], addr).await;
    let mut reply = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut reply)).await.expect("closed");
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("retry-after: 5"), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").expect("a body") + 4..];
    let error: tabswarm_protocol::api::ApiError = serde_json::from_str(body).expect("the JSON refusal");
    assert_eq!(error.error, "connections_per_ip");
    assert!(error.message.contains("from 127.0.0.1 (the limit is 2)"), "{}", error.message);
    assert_eq!(refusals.snapshot()["connections_per_ip"], 1);

    // Another address is not held to 127.0.0.1's count.
    let reply = fetch(&mut connect_from([127, 0, 0, 2], addr).await, "/").await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"), "{reply}");

    // Closing one of the two lets a new one in (once the server has seen the close).
    drop(idle.pop());
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if fetch(&mut connect_from([127, 0, 0, 1], addr).await, "/").await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
    }
    assert!(served, "a freed place is usable again");
    drop(idle);
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

#[tokio::test]
async fn past_the_total_limit_every_new_connection_is_refused_whatever_its_address() {
    let (addr, refusals, stop, server) = start(Limits { http_connections: 1, ..loopback_limited() }).await;
    let _idle = connect_from([127, 0, 0, 1], addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = connect_from([127, 0, 0, 3], addr).await;
    let mut reply = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), refused.read_to_string(&mut reply)).await.expect("closed");
    assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("\"error\":\"connections\""), "{reply}");
    assert_eq!(refusals.snapshot()["connections"], 1);
    drop(_idle);
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_closed_at_the_header_timeout_while_others_are_served() {
    let limits = Limits { header_timeout: Duration::from_secs(1), ..loopback_limited() };
    let (addr, refusals, stop, server) = start(limits).await;

    // Slowloris: a header line every 200 ms, never the blank line that ends them.
    let mut slow = connect_from([127, 0, 0, 1], addr).await;
    let began = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                break;
            }
            let mut buf = [0u8; 256];
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
                break;
            }
            if began.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        began.elapsed()
    };
    // Meanwhile a normal client is served.
    let normal = async { fetch(&mut connect_from([127, 0, 0, 1], addr).await, "/").await };
    let (closed_after, normal) = tokio::join!(trickle, normal);
    assert!(normal.starts_with("HTTP/1.1 200"), "{normal}");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
        "the trickling client was closed after {closed_after:?}"
    );
    assert_eq!(refusals.snapshot()["slow_headers"], 1);

    // An idle keep-alive connection is closed after the same time, but is not a slow client.
    let mut keep = connect_from([127, 0, 0, 1], addr).await;
    keep.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 512];
    let n = keep.read(&mut buf).await.expect("an answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut keep, Duration::from_secs(5)).await, "the idle connection is closed");
    assert_eq!(refusals.snapshot()["slow_headers"], 1, "idle keep-alive is not counted as slow");
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_stall() {
    let limits = Limits { write_stall: Duration::from_secs(1), ..loopback_limited() };
    let (addr, refusals, stop, server) = start(limits).await;
    let mut reader = connect_from([127, 0, 0, 1], addr).await;
    reader.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    // Read nothing while the server's writes wait, then take what the buffers held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut got)).await.expect("closed");
    assert!(got.len() < BIG, "the whole body arrived ({} bytes): the connection was not dropped", got.len());
    assert_eq!(refusals.snapshot()["slow_reader"], 1);
    // A client that reads gets it all.
    let mut full = connect_from([127, 0, 0, 1], addr).await;
    full.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut all = Vec::new();
    full.read_to_end(&mut all).await.expect("read");
    assert!(all.len() > BIG, "{} bytes", all.len());
    let _ = stop.send(());
    server.await.expect("task").expect("serve");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let (addr, _, stop, server) = start(loopback_limited()).await;
    let mut idle = connect_from([127, 0, 0, 1], addr).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 512];
    let _ = idle.read(&mut buf).await.expect("an answer");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("returns").expect("task").expect("serve");
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}
