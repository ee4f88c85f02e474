//! A bound on incoming libp2p connections per remote IP (in their handshake or established), so
//! one machine cannot take the relay's `--max-peers` or `--max-handshakes` for itself. Outgoing
//! connections (to other relays) are not counted; loopback is counted only when
//! [`Limits::limit_loopback`](crate::limits::Limits) says so.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};

use crate::limits::{Limits, ip_key};

/// Refused: the remote IP already has its limit of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} already has {limit} connections, its limit")]
pub struct PerIpExceeded {
    pub ip: IpAddr,
    pub limit: u32,
}

#[derive(Debug)]
pub struct Behaviour {
    /// `swarm_connections_per_ip` (0: no limit), and whose connections count.
    limits: Limits,
    /// Counted connections and the key each counts under.
    connections: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
}

impl Behaviour {
    pub fn new(limits: &Limits) -> Self {
        Self { limits: limits.clone(), connections: HashMap::new(), per_ip: HashMap::new() }
    }

    fn forget(&mut self, connection: ConnectionId) {
        if let Some(key) = self.connections.remove(&connection)
            && let Some(n) = self.per_ip.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&key);
            }
        }
    }
}

/// The IP a multiaddr starts with.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        let limit = self.limits.swarm_connections_per_ip;
        if limit == 0 || !self.limits.applies_to(ip) {
            return Ok(());
        }
        let key = ip_key(ip);
        let n = self.per_ip.entry(key).or_default();
        if *n >= limit {
            return Err(ConnectionDenied::new(PerIpExceeded { ip: ip.to_canonical(), limit }));
        }
        *n += 1;
        self.connections.insert(connection, key);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(closed) => self.forget(closed.connection_id),
            // Denied by another behaviour, or failed during its handshake.
            FromSwarm::ListenFailure(failure) => self.forget(failure.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn each_ip_gets_its_limit_and_a_closed_or_failed_connection_frees_its_place() {
        let mut limit = Behaviour::new(&Limits { swarm_connections_per_ip: 2, ..Limits::default() });
        let local = addr("/ip4/198.51.100.1/udp/9090/webrtc-direct");
        let a = addr("/ip4/203.0.113.9/udp/40000/webrtc-direct");
        let a_tcp = addr("/ip4/203.0.113.9/tcp/40001");
        let b = addr("/ip6/2001:db8::1/tcp/1");
        let b_same_64 = addr("/ip6/2001:db8::ffff/tcp/2");
        let ids: Vec<ConnectionId> = (0..8).map(|_| ConnectionId::new_unchecked(rand_id())).collect();
        limit.handle_pending_inbound_connection(ids[0], &local, &a).expect("first");
        limit.handle_pending_inbound_connection(ids[1], &local, &a_tcp).expect("second, over TCP");
        let denied = limit.handle_pending_inbound_connection(ids[2], &local, &a).expect_err("third");
        let cause = format!("{:?}", denied);
        assert!(cause.contains("203.0.113.9") && cause.contains("limit: 2"), "{cause}");
        // An IPv6 client's /64 is one client.
        limit.handle_pending_inbound_connection(ids[3], &local, &b).expect("v6 first");
        limit.handle_pending_inbound_connection(ids[4], &local, &b_same_64).expect("v6 second");
        assert!(limit.handle_pending_inbound_connection(ids[5], &local, &b).is_err());
        // Loopback is the operator's own.
        for id in &ids[5..8] {
            limit.handle_pending_inbound_connection(*id, &local, &addr("/ip4/127.0.0.1/tcp/5")).expect("loopback");
        }
        // Forgetting a connection frees its place, once.
        limit.forget(ids[0]);
        limit.forget(ids[0]);
        limit.handle_pending_inbound_connection(ids[6], &local, &a).expect("a place freed");
        assert!(limit.handle_pending_inbound_connection(ids[7], &local, &a).is_err());
        assert_eq!(limit.per_ip.get(&"203.0.113.9".parse::<IpAddr>().expect("ip")), Some(&2));

        let mut unlimited =
            Behaviour::new(&Limits { swarm_connections_per_ip: 0, limit_loopback: true, ..Limits::default() });
        for id in ids {
            unlimited.handle_pending_inbound_connection(id, &local, &a).expect("no limit");
        }
        assert!(unlimited.per_ip.is_empty());
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1_000_000);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}
