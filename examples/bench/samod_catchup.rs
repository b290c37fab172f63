//! The same catch-up with samod (the Rust automerge-repo): two repos over a
//! TCP connection on 127.0.0.1, one holding each document as the peer that
//! is behind holds it, the other as the peer that is ahead.
//!
//! samod cannot create a document under a chosen id, so each repo's
//! in-memory storage is filled before it loads, under samod's key layout
//! `[<document id>, "snapshot", <any name>]`. Both repos open every
//! document before the clock starts (samod syncs only open documents); the
//! clock covers the TCP connection, samod's handshake and the sync of every
//! document, until the repo that was behind holds the other's heads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use samod::storage::{InMemoryStorage, Storage, StorageKey};
use samod::{BackoffConfig, DialError, Dialer, DocHandle, DocumentId, Repo, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A stream that counts every byte read or written.
struct Counted<S> {
    inner: S,
    bytes: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            self.bytes
                .fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Dials plain TCP with samod's framing; counting on the dialing end sees
/// both directions once.
struct CountingTcpDialer {
    addr: std::net::SocketAddr,
    url: samod::Url,
    bytes: Arc<AtomicU64>,
}

impl Dialer for CountingTcpDialer {
    type Error = std::convert::Infallible;

    fn url(&self) -> samod::Url {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Self::Error>>> {
        let (addr, bytes) = (self.addr, self.bytes.clone());
        async move {
            let io = TcpStream::connect(addr)
                .await
                .map_err(DialError::transient)?;
            io.set_nodelay(true).map_err(DialError::transient)?;
            Ok(Transport::from_tokio_io(Counted { inner: io, bytes }))
        }
        .boxed()
    }
}

/// A repo whose storage holds `docs[i]` under `ids[i]`, every document open.
async fn repo_with(ids: &[DocumentId], docs: &[Vec<u8>]) -> anyhow::Result<(Repo, Vec<DocHandle>)> {
    let storage = InMemoryStorage::new();
    for (id, bytes) in ids.iter().zip(docs) {
        let key = StorageKey::from_parts([id.to_string().as_str(), "snapshot", "preloaded"])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        storage.put(key, bytes.clone()).await;
    }
    let repo = Repo::build_tokio().with_storage(storage).load().await;
    let mut handles = Vec::new();
    for id in ids {
        let handle = repo
            .find(id.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .ok_or_else(|| anyhow::anyhow!("samod lost document {id}"))?;
        handles.push(handle);
    }
    Ok((repo, handles))
}

/// Resolves once the document's heads equal `target`.
async fn wait_for_heads(
    handle: &DocHandle,
    target: &[automerge::ChangeHash],
) -> anyhow::Result<()> {
    let sorted = |mut h: Vec<automerge::ChangeHash>| {
        h.sort();
        h
    };
    let target = sorted(target.to_vec());
    let mut changes = handle.changes();
    let mut heads = handle.with_document(|d| d.get_heads());
    while sorted(heads) != target {
        heads = changes
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the samod repo stopped"))?
            .new_heads;
    }
    Ok(())
}

/// Catch-up of `before` (saved documents) to `after` (their descendants):
/// the time and the bytes that crossed the connection.
pub async fn samod_catchup(
    before: Vec<Vec<u8>>,
    after: Vec<Vec<u8>>,
) -> anyhow::Result<(Duration, u64)> {
    anyhow::ensure!(
        before.len() == after.len(),
        "as many documents before as after"
    );
    let ids = (0..before.len())
        .map(|i| {
            DocumentId::try_from((0x5a4d_u128 << 112 | i as u128).to_be_bytes().to_vec())
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let targets = after
        .iter()
        .map(|b| Ok(automerge::Automerge::load(b)?.get_heads()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (ahead, _ahead_handles) = repo_with(&ids, &after).await?;
    let (behind, behind_handles) = repo_with(&ids, &before).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = samod::Url::parse(&format!("tcp://{addr}"))?;
    let acceptor = ahead
        .make_acceptor(url.clone())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bytes = Arc::new(AtomicU64::new(0));

    let start = Instant::now();
    let accept = tokio::spawn(async move {
        let (io, _) = listener.accept().await?;
        io.set_nodelay(true)?;
        acceptor
            .accept(Transport::from_tokio_io(io))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::Ok(acceptor)
    });
    let dialer = Arc::new(CountingTcpDialer {
        addr,
        url,
        bytes: bytes.clone(),
    });
    let dial = behind
        .dial(BackoffConfig::default(), dialer)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (handle, target) in behind_handles.iter().zip(&targets) {
        wait_for_heads(handle, target).await?;
    }
    let took = start.elapsed();
    let total = bytes.load(Ordering::Relaxed);

    dial.close();
    let _acceptor = accept.await??;
    behind.stop().await;
    ahead.stop().await;
    Ok((took, total))
}
