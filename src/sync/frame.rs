//! Frames: the messages of a sync session, and their length-prefixed
//! encoding with a hard size cap checked before any allocation.

use serde::{Deserialize, Serialize};

use super::SyncError;

/// The largest frame accepted (length prefix excluded).
pub const MAX_FRAME: usize = 16 << 20;

/// One message of a sync session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of each side.
    Hello {
        /// [`super::PROTOCOL_VERSION`].
        version: u32,
        /// The community this session is about.
        community: [u8; 32],
        /// Ids (SHA-256) of every certificate the sender holds.
        certificates: Vec<[u8; 32]>,
    },
    /// The certificates the other side lacks (their stored bytes).
    Certificates {
        /// Certificate bytes.
        certificates: Vec<Vec<u8>>,
    },
    /// The heads of every document the sender holds.
    Heads {
        /// (document name, heads).
        docs: Vec<(String, Vec<[u8; 32]>)>,
    },
    /// One Automerge sync message for one document, with the device
    /// signatures of every change it carries.
    Sync {
        /// Document name.
        doc: String,
        /// The encoded Automerge sync message.
        message: Vec<u8>,
        /// (change hash, 64-byte signature).
        signatures: Vec<([u8; 32], Vec<u8>)>,
    },
    /// The sender has nothing more to send; it has received this many
    /// non-idle frames.
    Idle {
        /// Count of Certificates, Heads and Sync frames received so far.
        received: u64,
    },
    /// The sender ends the session, and why.
    Refuse {
        /// For people.
        reason: String,
    },
    /// Join protocol: a new member presents their claim and device
    /// certificates (the stored bytes).
    JoinRequest {
        /// The Claim certificate.
        claim: Vec<u8>,
        /// The Device certificate of the connecting device.
        device: Vec<u8>,
    },
    /// Join protocol, for a second device of an existing member: its device
    /// certificate signed by the device key only, and the one-time link
    /// key's signature over the same body.
    LinkRequest {
        /// The Device certificate, signed by the new device.
        device: Vec<u8>,
        /// Public half of the link key.
        link_key: [u8; 32],
        /// The link key's signature over `CERT_DOMAIN ‖ community ‖ body`.
        link_signature: Vec<u8>,
    },
    /// Join protocol: the claim was accepted; here is every certificate of
    /// the community. A sync session follows on the same stream.
    JoinAccepted {
        /// Certificate bytes.
        certificates: Vec<Vec<u8>>,
    },
    /// Protocol 2: whole documents for a peer whose `Heads` listed none of
    /// them: for each, every change with the device signature of each
    /// ([`super::whole`]).
    Whole {
        /// The documents.
        docs: Vec<super::whole::WholeDoc>,
    },
    /// Protocol 3, once after `Heads`: the documents of which the sender
    /// lacks some of the peer's changes (it does not hold all the heads the
    /// peer listed). The peer sends each as a `Delta` if it holds all of
    /// the sender's heads; a document both sides list goes by Automerge's
    /// protocol ([`super::delta`]). Not a content frame: it needs no
    /// answer, and `Idle` does not count it.
    Lacking {
        /// Document names.
        docs: Vec<String>,
    },
    /// Protocol 3: for a peer that listed a document in `Lacking` and whose
    /// heads the sender holds, every change since those heads with the
    /// device signature of each ([`super::delta`]).
    Delta {
        /// The documents: their changes since the peer's heads.
        docs: Vec<super::whole::WholeDoc>,
    },
}

impl Frame {
    /// A short description for logs: the kind, and for a sync message its
    /// document and how many signed changes it carries.
    pub fn kind(&self) -> String {
        match self {
            Frame::Hello { .. } => "hello".into(),
            Frame::Certificates { certificates } => {
                format!("{} certificates", certificates.len())
            }
            Frame::Heads { docs } => format!("heads of {} documents", docs.len()),
            Frame::Sync {
                doc, signatures, ..
            } => format!("sync {doc} with {} changes", signatures.len()),
            Frame::Idle { .. } => "idle".into(),
            Frame::Refuse { .. } => "refuse".into(),
            Frame::JoinRequest { .. } => "join request".into(),
            Frame::LinkRequest { .. } => "link request".into(),
            Frame::JoinAccepted { .. } => "join accepted".into(),
            Frame::Whole { docs } => format!(
                "{} whole documents with {} changes",
                docs.len(),
                docs.iter().map(|d| d.signatures.len()).sum::<usize>()
            ),
            Frame::Lacking { docs } => format!("lacking {} documents", docs.len()),
            Frame::Delta { docs } => format!(
                "deltas of {} documents with {} changes",
                docs.len(),
                docs.iter().map(|d| d.signatures.len()).sum::<usize>()
            ),
        }
    }

    /// Does this frame count towards `Idle::received`?
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            Frame::Certificates { .. }
                | Frame::Heads { .. }
                | Frame::Sync { .. }
                | Frame::Whole { .. }
                | Frame::Delta { .. }
        )
    }
}

/// Encode a frame as `length (u32 big-endian) ‖ postcard bytes`.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let body = postcard::to_stdvec(frame).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Read the length prefix, refusing anything over [`MAX_FRAME`].
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, SyncError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(SyncError::Protocol(format!(
            "frame of {len} bytes is over the {MAX_FRAME}-byte limit"
        )));
    }
    Ok(len)
}

/// Decode a frame body (without its length prefix).
pub fn decode(body: &[u8]) -> Result<Frame, SyncError> {
    postcard::from_bytes(body).map_err(|e| SyncError::Protocol(format!("undecodable frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let frames = [
            Frame::Hello {
                version: 1,
                community: [3; 32],
                certificates: vec![[1; 32]],
            },
            Frame::Sync {
                doc: "community".into(),
                message: vec![1, 2, 3],
                signatures: vec![([9; 32], vec![7; 64])],
            },
            Frame::Idle { received: 4 },
        ];
        for f in frames {
            let bytes = encode(&f);
            let len = frame_len([bytes[0], bytes[1], bytes[2], bytes[3]]).unwrap_or(0);
            assert_eq!(len, bytes.len() - 4);
            assert_eq!(decode(&bytes[4..]).ok(), Some(f));
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        assert!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
        assert!(frame_len(u32::MAX.to_be_bytes()).is_err());
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let hash = any::<[u8; 32]>();
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            (any::<u32>(), hash, proptest::collection::vec(hash, 0..4)).prop_map(
                |(version, community, certificates)| Frame::Hello {
                    version,
                    community,
                    certificates
                }
            ),
            proptest::collection::vec(bytes.clone(), 0..4)
                .prop_map(|certificates| Frame::Certificates { certificates }),
            proptest::collection::vec((".{0,20}", proptest::collection::vec(hash, 0..3)), 0..4)
                .prop_map(|docs| Frame::Heads { docs }),
            (
                ".{0,20}",
                bytes.clone(),
                proptest::collection::vec((hash, bytes.clone()), 0..3)
            )
                .prop_map(|(doc, message, signatures)| Frame::Sync {
                    doc,
                    message,
                    signatures
                }),
            any::<u64>().prop_map(|received| Frame::Idle { received }),
            ".{0,40}".prop_map(|reason| Frame::Refuse { reason }),
            proptest::collection::vec(".{0,20}", 0..4).prop_map(|docs| Frame::Lacking { docs }),
            (
                ".{0,20}",
                bytes.clone(),
                proptest::collection::vec((hash, bytes.clone()), 0..3)
            )
                .prop_map(|(doc, changes, signatures)| Frame::Delta {
                    docs: vec![crate::sync::whole::WholeDoc {
                        doc,
                        changes,
                        signatures
                    }]
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn frames_round_trip_and_mutations_never_panic(
            frame in any_frame(),
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let bytes = encode(&frame);
            prop_assert_eq!(frame_len([bytes[0], bytes[1], bytes[2], bytes[3]]).ok(), Some(bytes.len() - 4));
            prop_assert_eq!(decode(&bytes[4..]).ok(), Some(frame));
            let mut mutated = bytes[4..].to_vec();
            if !mutated.is_empty() {
                let i = pos.index(mutated.len());
                mutated[i] = byte;
                let _ = decode(&mutated);
            }
        }

        #[test]
        fn truncated_frames_fail_cleanly(cut in 0usize..40) {
            let bytes = encode(&Frame::Heads { docs: vec![("community".into(), vec![[5; 32]])] });
            let body = &bytes[4..];
            if cut < body.len() {
                prop_assert!(decode(&body[..cut]).is_err());
            }
        }
    }
}
