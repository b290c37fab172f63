//! Test harness: run two sync sessions against each other in memory, with
//! a seeded interleaving, every frame through the real encoding, and
//! optionally a connection that drops after some frames.

use std::collections::VecDeque;

use super::frame::{decode, encode};
use super::memory::MemoryReplica;
use super::{Frame, Replica, Session, Stats, SyncError};
use crate::trust::DeviceId;

/// A small seeded generator (xorshift64).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Run a session between two replicas to the end.
pub fn sync_pair(
    a: &mut MemoryReplica,
    a_device: DeviceId,
    b: &mut MemoryReplica,
    b_device: DeviceId,
    rng: &mut Rng,
) -> Result<(Stats, Stats), SyncError> {
    fresh_pair(a, a_device, b, b_device, rng, usize::MAX, Faults::default())
}

/// The connection was lost before the session ended.
pub const DROPPED: &str = "connection dropped";

/// Both sides wait for a frame that will not come; over a real connection
/// the idle timeout ends such a session.
pub const STALLED: &str = "both sides wait: deadlock";

/// Faults injected on the wire, in percent of frames.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Frames lost.
    pub lose: u64,
    /// Frames delivered twice.
    pub duplicate: u64,
}

/// Like [`sync_pair`], over a wire that loses and duplicates frames.
pub fn sync_pair_faulty(
    a: &mut MemoryReplica,
    a_device: DeviceId,
    b: &mut MemoryReplica,
    b_device: DeviceId,
    rng: &mut Rng,
    faults: Faults,
) -> Result<(Stats, Stats), SyncError> {
    fresh_pair(a, a_device, b, b_device, rng, usize::MAX, faults)
}

/// Like [`sync_pair`], but the connection drops after `frames` frames.
pub fn sync_pair_dropping(
    a: &mut MemoryReplica,
    a_device: DeviceId,
    b: &mut MemoryReplica,
    b_device: DeviceId,
    rng: &mut Rng,
    frames: usize,
) -> Result<(Stats, Stats), SyncError> {
    fresh_pair(a, a_device, b, b_device, rng, frames, Faults::default())
}

/// Run a session between any two replicas (a store and a memory replica,
/// say) to the end.
pub fn sync_replicas(
    a: &mut dyn Replica,
    a_device: DeviceId,
    b: &mut dyn Replica,
    b_device: DeviceId,
    rng: &mut Rng,
) -> Result<(Stats, Stats), SyncError> {
    fresh_pair(a, a_device, b, b_device, rng, usize::MAX, Faults::default())
}

/// New sessions on both sides, run over a wire with these limits.
fn fresh_pair(
    a: &mut dyn Replica,
    a_device: DeviceId,
    b: &mut dyn Replica,
    b_device: DeviceId,
    rng: &mut Rng,
    max_frames: usize,
    faults: Faults,
) -> Result<(Stats, Stats), SyncError> {
    let mut sa = Session::new(b_device);
    let mut sb = Session::new(a_device);
    let wire = Wire {
        max_frames,
        faults,
        ..Wire::default()
    };
    run_pair_with(&mut sa, a, &mut sb, b, rng, &mut |_| {}, wire)
}

/// What the simulated wire does to frames.
struct Wire<'t> {
    max_frames: usize,
    faults: Faults,
    /// Rewrites each frame before it travels (`true`: from `a`).
    tamper: Option<&'t mut dyn FnMut(bool, Frame) -> Frame>,
}

impl Default for Wire<'_> {
    fn default() -> Self {
        Wire {
            max_frames: usize::MAX,
            faults: Faults::default(),
            tamper: None,
        }
    }
}

/// Run two sessions to the end; `watch` sees every frame on the wire.
pub fn run_pair(
    sa: &mut Session,
    a: &mut dyn Replica,
    sb: &mut Session,
    b: &mut dyn Replica,
    rng: &mut Rng,
    watch: &mut dyn FnMut(&[u8]),
) -> Result<(Stats, Stats), SyncError> {
    run_pair_with(sa, a, sb, b, rng, watch, Wire::default())
}

/// Run two new sessions to the end, `tamper` rewriting each frame on the
/// wire (`true`: a frame from `a`), as a modified peer would send it.
pub fn sync_pair_tampered(
    a: &mut dyn Replica,
    a_device: DeviceId,
    b: &mut dyn Replica,
    b_device: DeviceId,
    rng: &mut Rng,
    tamper: &mut dyn FnMut(bool, Frame) -> Frame,
) -> Result<(Stats, Stats), SyncError> {
    let mut sa = Session::new(b_device);
    let mut sb = Session::new(a_device);
    let wire = Wire {
        tamper: Some(tamper),
        ..Wire::default()
    };
    run_pair_with(&mut sa, a, &mut sb, b, rng, &mut |_| {}, wire)
}

/// [`sync_pair_tampered`] with `b` speaking protocol `b_speaks`, as a
/// device of an earlier build does.
pub fn sync_pair_speaking(
    a: &mut dyn Replica,
    a_device: DeviceId,
    b: &mut dyn Replica,
    b_device: DeviceId,
    rng: &mut Rng,
    b_speaks: u32,
    tamper: &mut dyn FnMut(bool, Frame) -> Frame,
) -> Result<(Stats, Stats), SyncError> {
    let mut sa = Session::new(b_device);
    let mut sb = Session::new(a_device).speaking(b_speaks);
    let wire = Wire {
        tamper: Some(tamper),
        ..Wire::default()
    };
    run_pair_with(&mut sa, a, &mut sb, b, rng, &mut |_| {}, wire)
}

fn run_pair_with(
    sa: &mut Session,
    a: &mut dyn Replica,
    sb: &mut Session,
    b: &mut dyn Replica,
    rng: &mut Rng,
    watch: &mut dyn FnMut(&[u8]),
    mut setup: Wire,
) -> Result<(Stats, Stats), SyncError> {
    let (max_frames, faults) = (setup.max_frames, setup.faults);
    let mut to_b: VecDeque<Frame> = sa.start(a).into();
    let mut to_a: VecDeque<Frame> = sb.start(b).into();
    let mut delivered = 0;
    for _ in 0..100_000 {
        // A side that is done stops reading and closes, as `net::link` does.
        if sa.is_done() {
            to_a.clear();
        }
        if sb.is_done() {
            to_b.clear();
        }
        if sa.is_done() && sb.is_done() {
            return Ok((sa.stats().clone(), sb.stats().clone()));
        }
        if delivered >= max_frames {
            return Err(SyncError::Protocol(DROPPED.into()));
        }
        let a_turn = match (to_a.is_empty(), to_b.is_empty()) {
            (true, true) if sa.is_done() || sb.is_done() => {
                return Err(SyncError::Protocol(
                    "one side finished while the other still waits".into(),
                ));
            }
            (true, true) => return Err(SyncError::Protocol(STALLED.into())),
            (false, true) => true,
            (true, false) => false,
            (false, false) => rng.below(2) == 0,
        };
        let (queue, session, replica, out): (_, _, &mut dyn Replica, _) = if a_turn {
            (&mut to_a, &mut *sa, &mut *a, &mut to_b)
        } else {
            (&mut to_b, &mut *sb, &mut *b, &mut to_a)
        };
        // Frames that arrived together are handled together, as
        // `net::link` does with what it read while the last step ran: one
        // to three of those waiting, at random.
        let together = (1 + rng.below(3) as usize)
            .min(queue.len())
            .min(max_frames - delivered);
        let mut arrived = Vec::new();
        for frame in queue.drain(..together) {
            delivered += 1;
            let Some(wire) = travel(frame, a_turn, &mut setup, rng, watch) else {
                continue;
            };
            let copies = if rng.chance(faults.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                arrived.push(decode(&wire[4..])?);
            }
        }
        if arrived.is_empty() {
            continue;
        }
        let mut answer = Vec::new();
        session.handle_all(replica, arrived, &mut answer)?;
        out.extend(answer);
        // As `net::link` does; or not, as a driver that never reads
        // ahead would not.
        if rng.chance(80) {
            while let Some(next) = session.send_ahead(replica)? {
                out.push_back(next);
            }
        }
    }
    Err(SyncError::Protocol("too many steps".into()))
}

/// A frame on the wire: rewritten if the wire tampers, watched, encoded;
/// `None` if the wire loses it.
fn travel(
    mut frame: Frame,
    a_turn: bool,
    setup: &mut Wire,
    rng: &mut Rng,
    watch: &mut dyn FnMut(&[u8]),
) -> Option<Vec<u8>> {
    if let Some(tamper) = setup.tamper.as_mut() {
        frame = tamper(!a_turn, frame);
    }
    let wire = encode(&frame);
    watch(&wire);
    if std::env::var("CONVENE_TRACE_FRAMES").is_ok() {
        let text = match &frame {
            Frame::Sync {
                doc,
                signatures,
                message,
            } => {
                let m = automerge::sync::Message::decode(message).ok();
                format!(
                    "Sync {doc} sigs={} heads={:?} need={:?} have={}",
                    signatures.len(),
                    m.as_ref().map(|m| m
                        .heads
                        .iter()
                        .map(|h| h.to_string()[..6].to_string())
                        .collect::<Vec<_>>()),
                    m.as_ref().map(|m| m
                        .need
                        .iter()
                        .map(|h| h.to_string()[..6].to_string())
                        .collect::<Vec<_>>()),
                    m.as_ref().map(|m| m.have.len()).unwrap_or(0)
                )
            }
            Frame::Heads { docs } => format!(
                "Heads {:?}",
                docs.iter()
                    .map(|(d, h)| format!(
                        "{d}:{}",
                        h.iter()
                            .map(|x| hex::encode(&x[..3]))
                            .collect::<Vec<_>>()
                            .join(",")
                    ))
                    .collect::<Vec<_>>()
            ),
            other => format!("{other:?}").chars().take(80).collect(),
        };
        eprintln!("{} {text}", if a_turn { "  ->a" } else { "  ->b" });
    }
    if rng.chance(setup.faults.lose) {
        return None;
    }
    Some(wire)
}
