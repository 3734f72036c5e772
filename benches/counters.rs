//! Per-request bookkeeping on several threads at once: the counter a cache hit bumps,
//! in the old design (one `AtomicU64` that every thread increments) and in the
//! layer's (`internals::Counters`: each thread adds to its own cache-line-padded
//! stripe, summed when read).
//!
//! * `counters/shared_atomic/T`: `T` threads, each `fetch_add` on one shared atomic.
//! * `counters/striped/T`: `T` threads, each counting a cache hit as the layer does
//!   (with `--features metrics`, its check for a publication due included).
//!
//! Each sample starts `T` threads pinned to different cores, which wait for each
//! other and then bump `iters` times each; the time reported is the slowest thread's
//! divided by `iters`: what one request's bookkeeping costs a thread while the others
//! do the same. A cost that does not grow from 1 to 2 threads does not grow with
//! threads; this machine has 2 cores (BENCHMARKS.md says what happens at 64).
//!
//! `cargo bench --bench counters` (and `--features metrics`)

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum_stytch::internals::Counters;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Runs `bump` `iters` times on each of `threads` threads pinned to different cores,
/// started together; the slowest thread's time. `bump` is given a clock reading taken
/// once (a request has its own when it counts a cache hit).
fn on_threads<C: Sync>(counter: &C, threads: usize, iters: u64, bump: fn(&C, Instant)) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let start = &start;
                s.spawn(move || {
                    pin_to_cpu(i);
                    let now = Instant::now();
                    // The first bump of a new thread takes its stripe; not timed.
                    bump(counter, now);
                    start.wait();
                    let began = Instant::now();
                    for _ in 0..iters {
                        bump(black_box(counter), black_box(now));
                    }
                    began.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn pin_to_cpu(i: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(i % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn benches(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("counters");
    group.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        if threads > cores {
            eprintln!("{threads} threads on {cores} core(s): skipped");
            continue;
        }
        let shared = AtomicU64::new(0);
        group.bench_with_input(
            BenchmarkId::new("shared_atomic", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    on_threads(&shared, threads, iters, |c, _| {
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                });
            },
        );
        let striped = Counters::default();
        let mut bumps = 0;
        group.bench_with_input(
            BenchmarkId::new("striped", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    bumps += (iters + 1) * threads as u64;
                    on_threads(&striped, threads, iters, Counters::cache_hit)
                });
            },
        );
        // Every bump counted, summed over the stripes.
        assert_eq!(striped.cache_hits(), bumps, "a bump was lost");
        eprintln!(
            "{threads} thread(s): {} bumps, all counted, {} stripes",
            striped.cache_hits(),
            striped.stripes()
        );
    }
    group.finish();
}

criterion_group!(counters, benches);
criterion_main!(counters);
