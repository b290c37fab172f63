//! Frames on a byte stream: a 4-byte big-endian length (checked against the
//! cap before anything is allocated), then the postcard body.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::sync::SyncError;
use crate::sync::frame::{self, Frame};

/// Read one frame; returns it with its size on the wire.
pub async fn read_frame<R: AsyncRead + Unpin>(recv: &mut R) -> Result<(Frame, usize), SyncError> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|e| SyncError::Protocol(format!("the peer closed the stream: {e}")))?;
    let len = frame::frame_len(prefix)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| SyncError::Protocol(format!("the stream ended inside a frame: {e}")))?;
    Ok((frame::decode(&body)?, 4 + len))
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
