//! Frames on a byte stream: a 4-byte big-endian length (checked against the
//! cap before anything is allocated), then the postcard body.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::sync::SyncError;
use crate::sync::frame::{self, Frame};

/// Read one frame; returns it with its size on the wire.
pub async fn read_frame<R: AsyncRead + Unpin>(recv: &mut R) -> Result<(Frame, usize), SyncError> {
    read_frame_or_end(recv).await?.ok_or_else(stream_ended)
}

/// The error a session meets when the peer's stream ends (cleanly, between
/// frames) while it still waits for a frame.
pub fn stream_ended() -> SyncError {
    SyncError::Protocol("the peer closed the stream: early eof".into())
}

/// Read one frame, or `None` if the stream ends cleanly before it (at a
/// frame boundary: the peer finished its stream).
pub async fn read_frame_or_end<R: AsyncRead + Unpin>(
    recv: &mut R,
) -> Result<Option<(Frame, usize)>, SyncError> {
    let closed =
        |e: std::io::Error| SyncError::Protocol(format!("the peer closed the stream: {e}"));
    let mut prefix = [0u8; 4];
    if recv.read(&mut prefix[..1]).await.map_err(closed)? == 0 {
        return Ok(None);
    }
    recv.read_exact(&mut prefix[1..]).await.map_err(closed)?;
    let len = frame::frame_len(prefix)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| SyncError::Protocol(format!("the stream ended inside a frame: {e}")))?;
    Ok(Some((frame::decode(&body)?, 4 + len)))
}

/// Write one frame; returns its size on the wire.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    send: &mut W,
    f: &Frame,
) -> Result<usize, SyncError> {
    let bytes = frame::encode(f);
    send.write_all(&bytes)
        .await
        .map_err(|e| SyncError::Protocol(format!("cannot write to the peer: {e}")))?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Option<(Frame, usize)>, SyncError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut stream = bytes;
        runtime.block_on(read_frame_or_end(&mut stream))
    }

    #[test]
    fn a_stream_that_ends_between_frames_ends_cleanly_and_one_cut_inside_a_frame_does_not() {
        let frame = frame::encode(&Frame::Idle { received: 3 });
        assert!(matches!(
            read(&frame),
            Ok(Some((Frame::Idle { received: 3 }, n))) if n == frame.len()
        ));
        assert!(matches!(read(&[]), Ok(None)), "the end at a frame boundary");
        for cut in [1, 3, 4, frame.len() - 1] {
            assert!(read(&frame[..cut]).is_err(), "cut after {cut} bytes");
        }
    }
}
