//! Running a sync session over a QUIC connection.
//!
//! A writer task owns the send stream, so reading never waits on writing
//! (two large frames crossing cannot deadlock). Every wait for the peer's
//! next frame has an idle timeout. The side that reads the last frame
//! closes the connection; the side that wrote it waits for that close,
//! because closing right after writing can lose the last bytes.

use std::sync::Arc;
use std::time::Duration;

use iroh::Endpoint;
use iroh::endpoint::{Connection, RecvStream, SendStream};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::access::StoreAccess;
use super::wire::{read_frame_or_end, stream_ended, write_frame};
use super::{CONNECT_TIMEOUT, PeerTicket, SYNC_ALPN};
use crate::sync::frame::MAX_FRAME;
use crate::sync::{Frame, Session, Stats, SyncError};
use crate::trust::DeviceId;

/// One line of the `sync` report.
#[derive(Clone, Debug, Serialize)]
pub struct PeerReport {
    /// The peer's device id.
    pub id: DeviceId,
    /// Did the session complete?
    pub ok: bool,
    /// Changes sent.
    pub sent_changes: usize,
    /// Changes received and applied.
    pub received_changes: usize,
    /// Changes received but held back.
    pub held_back: usize,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The failure is an integrity or security rejection.
    #[serde(skip)]
    pub integrity: bool,
}

impl PeerReport {
    fn new(id: DeviceId) -> Self {
        PeerReport {
            id,
            ok: false,
            sent_changes: 0,
            received_changes: 0,
            held_back: 0,
            bytes_sent: 0,
            bytes_received: 0,
            error: None,
            integrity: false,
        }
    }

    /// A peer refused before any connection: it is not a current device of
    /// the community.
    pub fn not_a_member(id: DeviceId) -> Self {
        PeerReport {
            error: Some(format!(
                "device {} is not a current device of this community",
                id.short()
            )),
            integrity: true,
            ..PeerReport::new(id)
        }
    }

    fn fill(&mut self, stats: &Stats, sent: u64, received: u64) {
        self.sent_changes = stats.sent_changes;
        self.received_changes = stats.received_changes;
        self.held_back = stats.held_back;
        self.bytes_sent = sent;
        self.bytes_received = received;
    }
}

/// Frames handled in one step at most.
const READ_AHEAD: usize = 8;

/// KiB of frames read ahead of the session at most (the largest frame).
const READ_AHEAD_KIB: usize = MAX_FRAME / 1024;

/// A frame read (with its size on the wire), or why none could be; and its
/// room in the read-ahead budget, given back once it is handled.
type Arrived = (
    Result<(Frame, usize), SyncError>,
    Option<OwnedSemaphorePermit>,
);

/// Bytes received by every sync session of this process, for a progress
/// line (`cli::progress`).
pub static RECEIVED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run `session` over a stream pair until done; returns whether we wrote the
/// last frame, and the bytes each way.
pub async fn drive(
    session: &mut Session,
    access: &impl StoreAccess,
    send: SendStream,
    recv: &mut RecvStream,
    idle: Duration,
    first: Vec<Frame>,
) -> (Result<bool, SyncError>, u64, u64) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
    // Told by the reader when the peer's stream ends cleanly: its session
    // is over, so it has read all of ours it was to read.
    let peer_ended = Arc::new(tokio::sync::Notify::new());
    let ended = peer_ended.clone();
    let mut writer = tokio::spawn(async move {
        let mut send = send;
        let mut written = 0u64;
        while let Some(frame) = rx.recv().await {
            // A peer that stops reading cannot hold us forever.
            match tokio::time::timeout(idle, write_frame(&mut send, &frame)).await {
                Ok(Ok(n)) => written += n as u64,
                _ => break,
            }
        }
        let _ = send.finish();
        // Wait until the peer has everything we wrote (or is gone), or is
        // done: the acknowledgement of our stream's end, a lone packet, may
        // be held back 25 ms, and at the end of most sessions the peer,
        // which read our last `Idle` as we read its, waits the same way.
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()) => {}
            () = ended.notified() => {}
        }
        written
    });
    for f in first {
        let _ = tx.send(f);
    }
    // Frames that arrived while the session handled the last ones (QUIC
    // holds them) are read and handled together (`Session::handle_all`). The
    // reader never times out: silence counts only while the session waits
    // for a frame, not while it is busy. What is read and not yet handled
    // holds at most `READ_AHEAD_KIB` (plus the frame being read), so a peer
    // cannot make a session hold more than twice the largest frame's bytes.
    let budget = Arc::new(Semaphore::new(READ_AHEAD_KIB));
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel::<Arrived>();
    let reader = async {
        loop {
            let next = match read_frame_or_end(recv).await {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => {
                    peer_ended.notify_one();
                    Err(stream_ended())
                }
                Err(e) => Err(e),
            };
            let failed = next.is_err();
            let kib = next.as_ref().map_or(0, |(_, n)| n.div_ceil(1024));
            let Ok(held) = budget
                .clone()
                .acquire_many_owned(kib.min(READ_AHEAD_KIB) as u32)
                .await
            else {
                break;
            };
            // Once the session is over nobody takes frames (and their room
            // in the budget comes back at once): read on, to the stream's end.
            let _ = frames_tx.send((next, Some(held)));
            if failed {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let mut received = 0u64;
    let steps = async {
        // A whole session has a deadline too, however chatty the peer.
        let deadline = tokio::time::Instant::now() + (idle * 20).max(Duration::from_secs(600));
        loop {
            let wait = idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let first = match tokio::time::timeout(wait, frames_rx.recv()).await {
                Ok(Some(next)) => next,
                Ok(None) | Err(_) => (
                    Err(SyncError::Protocol(format!(
                        "the peer was silent for {} s, or the session passed its deadline",
                        wait.as_secs()
                    ))),
                    None,
                ),
            };
            let mut arrived = vec![first];
            while arrived.len() < READ_AHEAD
                && let Ok(next) = frames_rx.try_recv()
            {
                arrived.push(next);
            }
            // The frames read before a failure are handled, then it ends
            // the session. Their room in the budget is given back once the
            // step is over.
            let mut frames = Vec::with_capacity(arrived.len());
            let mut held = Vec::with_capacity(arrived.len());
            let mut failed = None;
            for (next, room) in arrived {
                held.push(room);
                match next {
                    Ok((frame, n)) => {
                        received += n as u64;
                        RECEIVED_BYTES.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        tracing::debug!("received {} ({n} bytes)", frame.kind());
                        frames.push(frame);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if frames.is_empty()
                && let Some(e) = failed
            {
                return Err(e);
            }
            // The store is held for this step only, never while waiting.
            let handled = access
                .with(|replica| handle_and_send(session, replica, frames, &tx))
                .and_then(|wrote| wrote);
            drop(held);
            tracing::debug!("handled it");
            match handled {
                Ok(wrote) => {
                    if session.is_done() {
                        return Ok(wrote);
                    }
                }
                Err(e) => {
                    if !matches!(e, SyncError::RefusedByPeer(_)) {
                        let _ = tx.send(Frame::Refuse {
                            reason: e.to_string(),
                        });
                    }
                    return Err(e);
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    };
    tokio::pin!(reader);
    let result = tokio::select! {
        result = steps => result,
        () = &mut reader => unreachable!("the reader never returns"),
    };
    drop(frames_rx);
    drop(tx);
    // The reader reads on while the writer settles, to see the peer's end.
    let sent = tokio::select! {
        done = tokio::time::timeout(idle, &mut writer) => match done {
            Ok(done) => done.unwrap_or(0),
            Err(_) => {
                writer.abort();
                0
            }
        },
        () = &mut reader => unreachable!("the reader never returns"),
    };
    (result, sent, received)
}

/// End a session that went well (its writer has waited until all it wrote
/// was acknowledged, or the peer's stream ended). The side that read the
/// last frame closes the connection. The side that wrote it waits (3 s at
/// most) for that close, or for the end of the peer's stream, whichever
/// comes first: the peer ends its stream as soon as its session is over,
/// which it is once it has read our last frame, but closes only once that
/// end is acknowledged, and a QUIC stack may hold back the acknowledgement
/// of a lone packet for 25 ms (`docs/protocol.md`, "Closing").
async fn finish(conn: &Connection, recv: &mut RecvStream, wrote_last: bool) {
    if wrote_last {
        let peer_finished = async {
            // What the peer wrote after our last frame answers nothing now.
            let mut rest = [0u8; 4096];
            while let Ok(Some(_)) = recv.read(&mut rest).await {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            tokio::select! {
                _ = conn.closed() => {}
                () = peer_finished => {}
            }
        })
        .await;
    }
    conn.close(0u32.into(), b"done");
}

/// Dial a peer and sync one community with it.
pub async fn sync_with(
    endpoint: &Endpoint,
    peer: &PeerTicket,
    access: &impl StoreAccess,
    idle: Duration,
) -> PeerReport {
    let device = DeviceId(peer.device);
    let mut report = PeerReport::new(device);
    let addr = match peer.endpoint_addr() {
        Ok(addr) => addr,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    // A short `--timeout` bounds the connection attempt too.
    let wait = CONNECT_TIMEOUT.min(idle);
    let conn = match tokio::time::timeout(wait, endpoint.connect(addr, SYNC_ALPN)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            report.error = Some(format!("cannot connect: {e}"));
            return report;
        }
        Err(_) => {
            report.error = Some(format!("no answer within {} s", wait.as_secs()));
            return report;
        }
    };
    let (send, mut recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(format!("the peer refused the connection: {e}"));
            report.integrity = e.to_string().contains("403");
            return report;
        }
    };
    run_session(&conn, device, access, send, &mut recv, idle, report).await
}

/// Serve one incoming sync connection.
pub async fn accept_sync(
    conn: Connection,
    access: &impl StoreAccess,
    idle: Duration,
) -> PeerReport {
    let device = DeviceId(*conn.remote_id().as_bytes());
    let mut report = PeerReport::new(device);
    let (send, mut recv) = match tokio::time::timeout(idle, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            report.error = Some(e.to_string());
            return report;
        }
        Err(_) => {
            report.error = Some("the peer opened no stream".into());
            return report;
        }
    };
    run_session(&conn, device, access, send, &mut recv, idle, report).await
}

/// Run a session on an open stream pair, fill the report, and close the
/// connection the way the protocol asks (the reader of the last frame closes).
async fn run_session(
    conn: &Connection,
    device: DeviceId,
    access: &impl StoreAccess,
    send: SendStream,
    recv: &mut RecvStream,
    idle: Duration,
    mut report: PeerReport,
) -> PeerReport {
    let mut session = Session::new(device);
    let first = match access.with(|replica| session.start(replica)) {
        Ok(first) => first,
        Err(e) => {
            report.error = Some(e.to_string());
            conn.close(1u32.into(), b"error");
            return report;
        }
    };
    let (result, sent, received) = drive(&mut session, access, send, recv, idle, first).await;
    report.fill(session.stats(), sent, received);
    match result {
        Ok(wrote_last) => {
            report.ok = true;
            finish(conn, recv, wrote_last).await;
        }
        Err(e) => {
            // The peer's gate closes with code 403: we are not (or no longer)
            // a device it accepts.
            let refused_by_gate = conn
                .close_reason()
                .is_some_and(|r| r.to_string().contains("code 403"));
            report.integrity = e.is_integrity() || refused_by_gate;
            report.error = Some(match conn.close_reason() {
                Some(reason) if !matches!(e, SyncError::RefusedByPeer(_)) => {
                    format!("{e} ({reason})")
                }
                _ => e.to_string(),
            });
            conn.close(1u32.into(), b"error");
        }
    }
    report
}

/// Handle `frames` and hand what each answers to the writer as soon as it
/// is answered (also the answers to the frames before one that failed),
/// then the frames the session reads ahead (`Session::send_ahead`), each as
/// soon as it is ready: the writer task writes it while the next is
/// handled, and the peer acts on it meanwhile. A peer's certificates and
/// heads often arrive together: our heads then go out before we build the
/// messages its heads call for, and the peer loads what it is behind on
/// while we do. Returns whether the last frame handled was answered.
fn handle_and_send(
    session: &mut Session,
    replica: &mut dyn crate::sync::Replica,
    frames: Vec<Frame>,
    tx: &mpsc::UnboundedSender<Frame>,
) -> Result<bool, SyncError> {
    let handled = session.handle_all(replica, frames, &mut ToWriter(tx));
    let wrote = handled?;
    while let Some(next) = session.send_ahead(replica)? {
        let _ = tx.send(next);
    }
    Ok(wrote)
}

/// The writer's end of a session, as `Session::handle_all` hands it
/// answers: each frame is queued for the writer task as it comes.
struct ToWriter<'a>(&'a mpsc::UnboundedSender<Frame>);

impl Extend<Frame> for ToWriter<'_> {
    fn extend<I: IntoIterator<Item = Frame>>(&mut self, frames: I) {
        for frame in frames {
            // The writer is gone only once the session ends.
            let _ = self.0.send(frame);
        }
    }
}
