//! When `serve` pushes to each known peer: after a local change, at once
//! when a peer shows up on the LAN, and after a failure again and again with
//! a doubling delay (1 s, 2 s, 4 s ... at most a minute), so a peer that
//! comes back is reached without a storm of attempts while it is away.
//!
//! Pure: time comes in as milliseconds, nothing here touches the network.

use std::collections::BTreeMap;

use crate::trust::DeviceId;

/// The first retry delay after a failure.
pub const FIRST_RETRY_MS: u64 = 1_000;
/// The longest retry delay.
pub const MAX_RETRY_MS: u64 = 60_000;

#[derive(Clone, Debug, Default)]
struct PeerState {
    /// Something may be new for this peer.
    dirty: bool,
    /// A session with it is running.
    in_flight: bool,
    /// Failures since the last success.
    failures: u32,
    /// No attempt before this time.
    not_before_ms: u64,
}

/// Push bookkeeping for every known peer.
#[derive(Debug, Default)]
pub struct PushSchedule {
    peers: BTreeMap<DeviceId, PeerState>,
}

/// The delay after `failures` failures in a row.
pub fn retry_delay_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY_MS << doublings).min(MAX_RETRY_MS)
}

impl PushSchedule {
    /// A schedule with no peer.
    pub fn new() -> Self {
        PushSchedule::default()
    }

    /// Something changed locally: every peer may need it.
    pub fn local_change(&mut self, known: &[DeviceId]) {
        for device in known {
            self.peers.entry(*device).or_default().dirty = true;
        }
    }

    /// The peer was just seen (on the LAN, or it dialed us): try it now,
    /// forgetting earlier failures.
    pub fn seen(&mut self, device: DeviceId) {
        let state = self.peers.entry(device).or_default();
        state.dirty = true;
        state.failures = 0;
        state.not_before_ms = 0;
    }

    /// The peers to push to now; they are marked as in flight.
    pub fn due(&mut self, now_ms: u64) -> Vec<DeviceId> {
        let mut out = Vec::new();
        for (device, state) in &mut self.peers {
            if state.dirty && !state.in_flight && now_ms >= state.not_before_ms {
                state.dirty = false;
                state.in_flight = true;
                out.push(*device);
            }
        }
        out
    }

    /// A push ended. A failed one is retried after the backoff delay.
    pub fn finished(&mut self, device: DeviceId, ok: bool, now_ms: u64) {
        let state = self.peers.entry(device).or_default();
        state.in_flight = false;
        if ok {
            state.failures = 0;
            state.not_before_ms = 0;
        } else {
            state.failures = state.failures.saturating_add(1);
            state.not_before_ms = now_ms + retry_delay_ms(state.failures);
            state.dirty = true;
        }
    }

    /// Failures in a row for `device` (for logs and tests).
    pub fn failures(&self, device: &DeviceId) -> u32 {
        self.peers.get(device).map(|s| s.failures).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> DeviceId {
        DeviceId([n; 32])
    }

    #[test]
    fn a_local_change_is_pushed_once_to_every_peer() {
        let mut s = PushSchedule::new();
        s.local_change(&[peer(1), peer(2)]);
        assert_eq!(s.due(0), vec![peer(1), peer(2)]);
        assert!(s.due(0).is_empty(), "in flight: not due again");
        s.finished(peer(1), true, 10);
        s.finished(peer(2), true, 10);
        assert!(s.due(20).is_empty(), "nothing new since");
    }

    #[test]
    fn a_change_during_a_push_is_pushed_after_it() {
        let mut s = PushSchedule::new();
        s.local_change(&[peer(1)]);
        assert_eq!(s.due(0), vec![peer(1)]);
        s.local_change(&[peer(1)]);
        assert!(s.due(1).is_empty(), "one session per peer at a time");
        s.finished(peer(1), true, 2);
        assert_eq!(s.due(3), vec![peer(1)]);
    }

    #[test]
    fn failures_back_off_doubling_up_to_a_minute() {
        let mut s = PushSchedule::new();
        s.local_change(&[peer(1)]);
        assert_eq!(s.due(0), vec![peer(1)]);
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let failed_at = now;
            s.finished(peer(1), false, now);
            while s.due(now).is_empty() {
                now += 100;
            }
            delays.push(now - failed_at);
        }
        assert_eq!(
            delays,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000
            ]
        );
    }

    #[test]
    fn success_or_sighting_resets_the_backoff() {
        let mut s = PushSchedule::new();
        s.local_change(&[peer(1)]);
        for t in 0..5 {
            let now = t * 100_000;
            assert_eq!(s.due(now), vec![peer(1)]);
            s.finished(peer(1), false, now);
        }
        assert_eq!(s.failures(&peer(1)), 5);
        assert!(s.due(400_001).is_empty(), "waiting out the backoff");
        s.seen(peer(1));
        assert_eq!(s.due(400_001), vec![peer(1)], "seen: tried at once");
        s.finished(peer(1), true, 400_002);
        assert_eq!(s.failures(&peer(1)), 0);
    }

    #[test]
    fn delays_are_capped() {
        assert_eq!(retry_delay_ms(1), 1_000);
        assert_eq!(retry_delay_ms(6), 32_000);
        assert_eq!(retry_delay_ms(7), 60_000);
        assert_eq!(retry_delay_ms(u32::MAX), 60_000);
    }
}
