//! Stalled WebRTC handshakes: what opens one at a webrtc-direct listener and then goes silent.
//!
//! A webrtc-direct listener starts a connection (ICE agent, DTLS, SCTP waiting) for each new
//! address that sends it a STUN binding request naming a ufrag; the dialer would go on with DTLS.
//! [`binding_request`] is that first packet, so `tabswarm-loadgen handshakes` can hold many
//! handshakes open at once and read what they cost the relay.

use rand08::Rng;
use stun::agent::TransactionId;
use stun::attributes::ATTR_USERNAME;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{BINDING_REQUEST, Message, Setter};
use stun::textattrs::Username;

/// A fresh ufrag of the form libp2p's webrtc-direct uses (the dialer's password is the same).
pub fn random_ufrag() -> String {
    let suffix: String =
        rand08::thread_rng().sample_iter(&rand08::distributions::Alphanumeric).take(32).map(char::from).collect();
    format!("libp2p+webrtc+v1/{suffix}")
}

/// The STUN binding request a webrtc-direct dialer sends first: USERNAME `ufrag:ufrag`,
/// short-term MESSAGE-INTEGRITY keyed with the ufrag, FINGERPRINT.
pub fn binding_request(ufrag: &str) -> Result<Vec<u8>, String> {
    let mut message = Message::new();
    let setters: [Box<dyn Setter>; 5] = [
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(ATTR_USERNAME, format!("{ufrag}:{ufrag}"))),
        Box::new(MessageIntegrity::new_short_term_integrity(ufrag.to_owned())),
        Box::new(FINGERPRINT),
    ];
    message.build(&setters).map_err(|e| format!("building a STUN binding request: {e}"))?;
    Ok(message.raw)
}

#[cfg(test)]
mod tests {
    use stun::message::Getter;

    use super::*;

    #[test]
    fn the_request_carries_the_ufrag_and_checks_out() {
        let ufrag = random_ufrag();
        assert!(ufrag.starts_with("libp2p+webrtc+v1/") && ufrag.len() == 17 + 32, "{ufrag}");
        let raw = binding_request(&ufrag).expect("built");
        let mut parsed = Message::new();
        parsed.unmarshal_binary(&raw).expect("a STUN message");
        assert_eq!(parsed.typ, BINDING_REQUEST);
        let mut username = Username::new(ATTR_USERNAME, String::new());
        username.get_from(&parsed).expect("USERNAME");
        assert_eq!(username.text, format!("{ufrag}:{ufrag}"));
        MessageIntegrity::new_short_term_integrity(ufrag.clone())
            .check(&mut parsed)
            .expect("integrity under the ufrag");
        let wrong = MessageIntegrity::new_short_term_integrity("another".into()).check(&mut parsed);
        assert!(wrong.is_err(), "integrity must not check out under another password");
        FINGERPRINT.check(&parsed).expect("fingerprint");
    }
}
