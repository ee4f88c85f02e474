//! A peer's libp2p node without `PeerNode` around it, for tests that make it misbehave (publish
//! garbage, stop reading): `tests/gossip.rs` and `tests/load.rs` include it by `#[path]`.

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, gossipsub, identity};
use tabswarm_net::{PeerBehaviour, PeerBehaviourEvent};

/// A peer's behaviour over TCP under a new key, dialling `relay`; nothing drives it yet.
pub fn dial(relay: Multiaddr, agent: &str) -> Swarm<PeerBehaviour> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(Default::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| PeerBehaviour::new(key, agent.to_owned()))
        .expect("behaviour")
        .build();
    swarm.dial(relay).expect("dial");
    swarm
}

/// Drives `swarm` until the relay has told it about its subscription (within `wait`).
pub async fn until_subscribed(swarm: &mut Swarm<PeerBehaviour>, wait: Duration) {
    tokio::time::timeout(wait, async {
        loop {
            if let SwarmEvent::Behaviour(PeerBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) =
                swarm.select_next_some().await
            {
                break;
            }
        }
    })
    .await
    .expect("the relay's subscription heard");
}
