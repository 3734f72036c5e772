//! The background thread that keeps an instance's revocations in step with Redis:
//! subscribe, load, apply, publish, and after any failure reconnect, resubscribe and
//! reload. Every command has a deadline; no failure reaches a request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;

use super::message::Revocation;
use super::{FleetSettings, Shared};

/// The pause after a failure doubles from this, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the connection is checked (a ping), and the set trimmed at most.
const HEARTBEAT: Duration = Duration::from_secs(1);
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Why a connection's life ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the subscription was closed")]
    Closed,
}

/// Starts the thread. It stops once the layer is dropped.
pub(super) fn spawn(settings: FleetSettings, shared: Arc<Shared>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("axum-stytch-revocations".into())
        .spawn(move || runtime.block_on(run(settings, shared)))?;
    Ok(())
}

async fn run(settings: FleetSettings, shared: Arc<Shared>) {
    let client = match redis::Client::open(settings.url.as_str()) {
        Ok(client) => client,
        // Checked when the layer was built.
        Err(error) => {
            shared.diagnostics.revocation_feed_failed(&error);
            return;
        }
    };
    let watchdog = tokio::spawn(watch_staleness(Arc::clone(&shared)));
    let mut backoff = FIRST_BACKOFF;
    while !shared.stopping.load(Ordering::Acquire) {
        let ended = connection(&client, &settings, &shared, &mut backoff).await;
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        if let Err(error) = ended {
            shared.metrics.revocation_feed_failure();
            shared.diagnostics.revocation_feed_failed(&error);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.stop.notified() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    watchdog.abort();
}

/// With a maximum staleness: once the feed is stale, every cached token is checked
/// again (and, while it stays stale, sent to Stytch). Once per silence: a silence is
/// told apart from the next by the time the feed was last heard, so no flip between
/// two ticks is missed.
async fn watch_staleness(shared: Arc<Shared>) {
    if shared.max_staleness.is_none() {
        return;
    }
    let mut distrusted = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let heard = shared.heard_at.load(Ordering::Acquire);
        if shared.stale() && distrusted != Some(heard) {
            shared.local.check_all_again();
            distrusted = Some(heard);
        }
    }
}

/// `fut`, or [`Ended::Timeout`] after `bound`.
async fn within<T>(
    bound: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Ended> {
    match tokio::time::timeout(bound, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Ended::Timeout(bound)),
    }
}

/// One connection's life: subscribe, then load, then apply and publish until it fails
/// (or the layer is dropped: `Ok`).
async fn connection(
    client: &redis::Client,
    settings: &FleetSettings,
    shared: &Shared,
    backoff: &mut Duration,
) -> Result<(), Ended> {
    let bound = settings.timeout;
    let keys = &settings.keys;
    let pubsub = within(bound, client.get_async_pubsub()).await?;
    let (mut sink, mut messages) = pubsub.split();
    within(bound, sink.subscribe(&keys.channel)).await?;
    let mut conn = within(bound, client.get_multiplexed_async_connection()).await?;
    // Subscribed before loading: a revocation published meanwhile arrives as a message.
    let now_ms = crate::clock::unix_millis(shared.clock.now());
    let entries: Vec<(Vec<u8>, f64)> = within(
        bound,
        redis::cmd("ZRANGE")
            .arg(&keys.revoked)
            .arg(now_ms)
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(&mut conn),
    )
    .await?;
    for (member, score) in entries {
        apply(shared, Revocation::parse_entry(&member, score));
    }
    shared.heard();
    shared.loaded.send_replace(true);
    *backoff = FIRST_BACKOFF;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut trimmed = tokio::time::Instant::now();
    loop {
        publish_pending(&mut conn, settings, shared).await?;
        tokio::select! {
            message = messages.next() => {
                let message = message.ok_or(Ended::Closed)?;
                apply(shared, Revocation::parse_message(message.get_payload_bytes()));
            }
            () = shared.outbox_ready.notified() => {}
            _ = heartbeat.tick() => {
                within(bound, sink.ping::<redis::Value>()).await?;
                shared.heard();
                if trimmed.elapsed() >= TRIM_EVERY {
                    trim(&mut conn, settings, shared).await?;
                    trimmed = tokio::time::Instant::now();
                }
            }
            () = shared.stop.notified() => return Ok(()),
        }
        if shared.stopping.load(Ordering::Acquire) {
            return Ok(());
        }
    }
}

/// Records a revocation from the fleet (a malformed one is counted and warned about,
/// never applied).
fn apply(shared: &Shared, revocation: Option<Revocation>) {
    match revocation {
        Some(revocation) => {
            shared.metrics.revocation_received();
            shared
                .local
                .record(&revocation.member_session_id, revocation.until());
        }
        None => {
            shared.metrics.revocation_malformed();
            shared.diagnostics.revocation_malformed();
        }
    }
}

/// Publishes what the outbox holds: each revocation added to the set (keeping the
/// later time) and sent on the channel. Taken out of the outbox only once Redis has it.
async fn publish_pending(
    conn: &mut redis::aio::MultiplexedConnection,
    settings: &FleetSettings,
    shared: &Shared,
) -> Result<(), Ended> {
    loop {
        let pending: Vec<Revocation> = {
            let outbox = shared
                .outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            outbox.iter().take(100).cloned().collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let now_ms = crate::clock::unix_millis(shared.clock.now());
        let mut pipe = redis::pipe();
        // The set keeps only what may still be needed.
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&settings.keys.revoked)
            .arg("-inf")
            .arg(format!("({now_ms}"))
            .ignore();
        for revocation in &pending {
            pipe.cmd("ZADD")
                .arg(&settings.keys.revoked)
                .arg("GT")
                .arg(revocation.until_ms)
                .arg(&revocation.member_session_id)
                .ignore()
                .cmd("PUBLISH")
                .arg(&settings.keys.channel)
                .arg(revocation.message())
                .ignore();
        }
        within(settings.timeout, pipe.query_async::<()>(conn)).await?;
        let mut outbox = shared
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for revocation in &pending {
            // The oldest may have been dropped for room meanwhile: take only what was
            // sent.
            if outbox.front() == Some(revocation) {
                outbox.pop_front();
                shared.metrics.revocation_published();
            }
        }
    }
}

/// Drops the set's entries whose time has passed.
async fn trim(
    conn: &mut redis::aio::MultiplexedConnection,
    settings: &FleetSettings,
    shared: &Shared,
) -> Result<(), Ended> {
    let now_ms = crate::clock::unix_millis(shared.clock.now());
    within(
        settings.timeout,
        conn.zrembyscore::<_, _, _, ()>(&settings.keys.revoked, "-inf", format!("({now_ms}")),
    )
    .await
}
