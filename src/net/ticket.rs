//! Tickets: short texts that carry what a peer needs to reach another.
//!
//! A peer ticket (`convene ticket`) holds a device id and its direct
//! addresses. An invite ticket (`convene invite`) also holds the community id
//! and the secret half of a one-time invite key. Both are postcard bytes in
//! lowercase base32 behind a prefix that names their kind.

use std::net::SocketAddr;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

/// Prefix of a peer ticket.
pub const PEER_PREFIX: &str = "cvpeer";
/// Prefix of an invite ticket.
pub const INVITE_PREFIX: &str = "cvinvite";

/// How to reach one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTicket {
    /// Device (endpoint) id.
    pub device: [u8; 32],
    /// Direct addresses.
    pub addrs: Vec<SocketAddr>,
}

/// A one-time invitation into a community.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteTicket {
    /// The community.
    pub community: [u8; 32],
    /// Secret half of the invite key (signs the claim).
    pub invite_secret: [u8; 32],
    /// The inviting device.
    pub inviter: PeerTicket,
}

fn encode<T: Serialize>(prefix: &str, value: &T) -> String {
    let bytes = postcard::to_stdvec(value).unwrap_or_default();
    format!(
        "{prefix}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    )
}

fn decode<T: for<'de> Deserialize<'de>>(prefix: &str, text: &str) -> Result<T, String> {
    let body = text
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| format!("not a ticket of this kind (it should start with '{prefix}')"))?;
    let bytes = BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|e| format!("the ticket is damaged: {e}"))?;
    postcard::from_bytes(&bytes).map_err(|e| format!("the ticket is damaged: {e}"))
}

impl PeerTicket {
    /// Where iroh should dial: the device id with its direct addresses.
    pub fn endpoint_addr(&self) -> Result<iroh::EndpointAddr, String> {
        let id = iroh::EndpointId::from_bytes(&self.device)
            .map_err(|e| format!("invalid device id: {e}"))?;
        Ok(self
            .addrs
            .iter()
            .fold(iroh::EndpointAddr::new(id), |a, s| a.with_ip_addr(*s)))
    }

    /// The text form.
    pub fn encode(&self) -> String {
        encode(PEER_PREFIX, self)
    }
    /// Parse the text form.
    pub fn decode(text: &str) -> Result<Self, String> {
        decode(PEER_PREFIX, text)
    }
}

impl InviteTicket {
    /// The text form.
    pub fn encode(&self) -> String {
        encode(INVITE_PREFIX, self)
    }
    /// Parse the text form.
    pub fn decode(text: &str) -> Result<Self, String> {
        decode(INVITE_PREFIX, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tickets_round_trip() {
        let peer = PeerTicket {
            device: [7; 32],
            addrs: vec!["127.0.0.1:4000".parse().unwrap_or_else(|e| panic!("{e}"))],
        };
        assert_eq!(PeerTicket::decode(&peer.encode()), Ok(peer.clone()));
        let invite = InviteTicket {
            community: [1; 32],
            invite_secret: [2; 32],
            inviter: peer,
        };
        assert_eq!(InviteTicket::decode(&invite.encode()), Ok(invite.clone()));
        assert!(PeerTicket::decode(&invite.encode()).is_err());
        assert!(InviteTicket::decode("cvinvite!!!").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn tickets_round_trip_and_mutations_never_panic(
            device in any::<[u8; 32]>(),
            secret in any::<[u8; 32]>(),
            ports in proptest::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..4),
            pos in any::<prop::sample::Index>(),
            c in proptest::char::range('0', 'z'),
        ) {
            let peer = PeerTicket {
                device,
                addrs: ports.iter().map(|(ip, port)| std::net::SocketAddr::from((*ip, *port))).collect(),
            };
            prop_assert_eq!(PeerTicket::decode(&peer.encode()), Ok(peer.clone()));
            let invite = InviteTicket { community: device, invite_secret: secret, inviter: peer };
            let text = invite.encode();
            prop_assert_eq!(InviteTicket::decode(&text), Ok(invite));
            let mut chars: Vec<char> = text.chars().collect();
            let i = pos.index(chars.len());
            chars[i] = c;
            let _ = InviteTicket::decode(&chars.into_iter().collect::<String>());
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = PeerTicket::decode(&text);
            let _ = InviteTicket::decode(&format!("cvinvite{text}"));
        }
    }
}
