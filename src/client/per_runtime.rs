//! One HTTP client per Tokio runtime.
//!
//! A pooled connection's I/O runs as a task on the runtime that opened it. One
//! `StytchAuth` shared by several runtimes (a `#[tokio::test]` suite, each test with its
//! own runtime) would otherwise hand a request on runtime B a connection whose task died
//! with runtime A ("dispatch task is gone": a 503 for a call Stytch never saw), or one
//! whose runtime sits idle and never drives it (a call that hangs until its timeout).
//! Each runtime gets its own client, hence its own pool; the clients of the most
//! recently used [`MAX_RUNTIMES`] runtimes are kept. A process with one runtime (any
//! server) has one client, as before.

use std::sync::{Mutex, PoisonError};

use tokio::runtime::{Handle, Id};

use super::ClientError;

/// Clients kept, one per runtime, the most recently used first to stay.
const MAX_RUNTIMES: usize = 8;

/// HTTP clients by runtime, all built alike.
pub(crate) struct PerRuntime {
    build: Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>,
    /// Least recently used first.
    clients: Mutex<Vec<(Id, reqwest::Client)>>,
    /// Built (and checked) at start-up, for the first runtime that calls.
    spare: Mutex<Option<reqwest::Client>>,
}

impl PerRuntime {
    /// Clients made by `build`; one is built now, so a configuration that cannot make
    /// one fails here, at start-up.
    pub(crate) fn new(
        build: impl Fn() -> reqwest::Result<reqwest::Client> + Send + Sync + 'static,
    ) -> reqwest::Result<Self> {
        let spare = build()?;
        Ok(Self {
            build: Box::new(build),
            clients: Mutex::new(Vec::with_capacity(MAX_RUNTIMES)),
            spare: Mutex::new(Some(spare)),
        })
    }

    /// The client for the runtime this is called on.
    pub(crate) fn current(&self) -> Result<reqwest::Client, ClientError> {
        let runtime = Handle::try_current()
            .map_err(|_| ClientError::transport("called outside a Tokio runtime"))?
            .id();
        if let Some(client) = self.used(runtime) {
            return Ok(client);
        }
        // Built outside the lock: other runtimes' calls do not wait for it.
        let spare = lock(&self.spare).take();
        let client = match spare {
            Some(client) => client,
            None => (self.build)().map_err(ClientError::from)?,
        };
        let mut clients = lock(&self.clients);
        // Another call on this runtime may have added one meanwhile: use that one.
        if let Some(i) = clients.iter().position(|(id, _)| *id == runtime) {
            return Ok(clients[i].1.clone());
        }
        if clients.len() >= MAX_RUNTIMES {
            clients.remove(0);
        }
        clients.push((runtime, client.clone()));
        Ok(client)
    }

    /// The client of `runtime`, marked most recently used.
    fn used(&self, runtime: Id) -> Option<reqwest::Client> {
        let mut clients = lock(&self.clients);
        let i = clients.iter().position(|(id, _)| *id == runtime)?;
        let entry = clients.remove(i);
        let client = entry.1.clone();
        clients.push(entry);
        Some(client)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.clients).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<AtomicUsize>, PerRuntime) {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let clients = PerRuntime::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            reqwest::Client::builder().build()
        })
        .expect("a client");
        (built, clients)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn one_client_per_runtime_and_at_most_eight_kept() {
        let (built, clients) = counting();
        assert_eq!(built.load(Ordering::SeqCst), 1, "checked at start-up");
        let first = runtime();
        first.block_on(async { clients.current().expect("a client") });
        first.block_on(async { clients.current().expect("a client") });
        assert_eq!(
            built.load(Ordering::SeqCst),
            1,
            "the spare, then the same one"
        );
        for _ in 0..20 {
            runtime().block_on(async { clients.current().expect("a client") });
        }
        assert_eq!(built.load(Ordering::SeqCst), 21);
        assert_eq!(clients.len(), MAX_RUNTIMES);
    }

    #[test]
    fn outside_a_runtime_there_is_no_client() {
        let (_, clients) = counting();
        assert!(matches!(
            clients.current(),
            Err(ClientError::Transport { .. })
        ));
    }
}
