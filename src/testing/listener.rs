//! A TCP listener whose connections fail while the emulator refuses them
//! ([`StytchEmulator::set_refusing_connections`]).
//!
//! [`StytchEmulator::set_refusing_connections`]: crate::testing::StytchEmulator::set_refusing_connections

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener that drops connections while `refusing` is set.
pub(crate) struct RefusingListener {
    inner: TcpListener,
    refusing: Arc<AtomicBool>,
}

impl RefusingListener {
    /// Wraps `inner`; connections are refused while `refusing` is `true`.
    pub(crate) fn new(inner: TcpListener, refusing: Arc<AtomicBool>) -> Self {
        Self { inner, refusing }
    }
}

impl axum::serve::Listener for RefusingListener {
    type Io = RefusableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.refusing.load(Ordering::SeqCst) {
                        // Reset rather than close gracefully, like an unreachable peer.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let io = RefusableStream {
                        inner: stream,
                        refusing: Arc::clone(&self.refusing),
                    };
                    return (io, addr);
                }
                Err(error) => {
                    tracing::debug!(%error, "Stytch emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails as soon as the emulator starts refusing, so that
/// pooled keep-alive connections stop working too.
pub(crate) struct RefusableStream {
    inner: TcpStream,
    refusing: Arc<AtomicBool>,
}

impl RefusableStream {
    fn refusing(&self) -> bool {
        let refusing = self.refusing.load(Ordering::SeqCst);
        if refusing {
            let _ = self.inner.set_zero_linger();
        }
        refusing
    }
}

fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the Stytch emulator is refusing connections",
    )
}

impl AsyncRead for RefusableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refusing() {
            return Poll::Ready(Err(refused()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RefusableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.refusing() {
            return Poll::Ready(Err(refused()));
        }
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
        if self.refusing() {
            return Poll::Ready(Err(refused()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
