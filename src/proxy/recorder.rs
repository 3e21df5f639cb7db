//! A client connection that keeps a copy of what it read while a request
//! header was parsed, so that the proxy can be handed those bytes again.
//!
//! The front path ([`super::front`]) reads a request header with Pingora's
//! own HTTP/1 session over a [`Recorder`]. When it does not answer the
//! request itself, the bytes recorded are given to the proxy's session as
//! Pingora's pipelined prefix, which its parser reads before the socket: the
//! proxy parses the same bytes with the same parser, as if the front path had
//! not been there.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client stream, and the bytes read from it since [`Recorder::record`].
#[derive(Debug)]
pub(crate) struct Recorder {
    inner: Stream,
    /// A copy of every byte read while recording.
    record: BytesMut,
    recording: bool,
}

impl Recorder {
    /// Wraps `stream`, not recording yet.
    pub(crate) fn new(stream: Stream) -> Self {
        Recorder {
            inner: stream,
            record: BytesMut::new(),
            recording: false,
        }
    }

    /// The recorder `stream` is, or a new one around it. `None` only if
    /// a stream that is a recorder cannot be taken back as one, which
    /// `Any` rules out.
    pub(crate) fn of(stream: Stream) -> Option<Box<Self>> {
        if stream.as_any().is::<Recorder>() {
            stream.into_any().downcast::<Recorder>().ok()
        } else {
            Some(Box::new(Recorder::new(stream)))
        }
    }

    /// Starts recording afresh: what was recorded before is dropped.
    pub(crate) fn record(&mut self) {
        self.record.clear();
        self.recording = true;
    }

    /// Stops recording and hands over what was recorded.
    pub(crate) fn take(&mut self) -> BytesMut {
        self.recording = false;
        self.record.split()
    }

    /// How many bytes were recorded so far.
    pub(crate) fn recorded(&self) -> usize {
        self.record.len()
    }
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.recording {
            if let Poll::Ready(Ok(())) = polled {
                this.record.extend_from_slice(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Recorder {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Recorder {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Recorder {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Recorder {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Recorder {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Recorder {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Recorder {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
