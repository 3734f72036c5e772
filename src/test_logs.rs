//! Test helper: what `tracing` logs, as text. Also included by the integration tests
//! (`tests/common`), so it names nothing of this crate.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// What `tracing` logs, as text: give it to a subscriber as its writer, or record this
/// thread's events at `INFO` and above with [`on_this_thread`](Self::on_this_thread).
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

/// The writer a subscriber gets from [`CapturedLogs`].
pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CapturedWriter(Arc::clone(&self.0))
    }
}

impl CapturedLogs {
    /// The text logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Records the events of this thread (a `#[tokio::test]` runtime's only thread, so
    /// its tasks too) at `INFO` and above until the guard is dropped.
    pub fn on_this_thread(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(self.clone())
                .finish(),
        )
    }
}

/// Runs `f` with this thread's events at `INFO` and above recorded; `f` is given a
/// function that returns the text logged so far.
pub fn capture<R>(f: impl FnOnce(&dyn Fn() -> String) -> R) -> R {
    let logs = CapturedLogs::default();
    let _recording = logs.on_this_thread();
    f(&|| logs.text())
}
