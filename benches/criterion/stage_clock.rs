//! The mod_reqtimeout arithmetic (`weir_edge::reqtimeout::StageClock`): started for every stage
//! of every connection, and `received`/`deadline` run after every read.
//!
//! Run: `cargo bench -p weir-edge --bench stage_clock`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::time::Instant;
use weir_conf::edge::StageTimeout;
use weir_edge::reqtimeout::{Stage, StageClock};

fn bench(c: &mut Criterion) {
    // Debian's reqtimeout.conf: header=20-40,MinRate=500.
    let header = StageTimeout {
        initial: Duration::from_secs(20),
        max: Some(Duration::from_secs(40)),
        min_rate: Some(500),
    };
    let fixed = StageTimeout::fixed(10);
    let now = Instant::now();
    let mut group = c.benchmark_group("stage_clock");
    group.bench_function("start_header", |b| {
        b.iter(|| black_box(StageClock::start_at(Stage::Header, black_box(&header), now)))
    });
    group.bench_function("received_and_deadline", |b| {
        let mut clock = StageClock::start_at(Stage::Header, &header, now).unwrap();
        b.iter(|| {
            clock.received(black_box(517));
            black_box(clock.deadline())
        })
    });
    group.bench_function("deadline_fixed", |b| {
        let clock = StageClock::start_at(Stage::Handshake, &fixed, now).unwrap();
        b.iter(|| black_box(black_box(&clock).deadline()))
    });
    // A whole 1 KiB head arriving in 8 reads: what one request's header stage costs.
    group.bench_function("head_in_8_reads", |b| {
        b.iter(|| {
            let mut clock = StageClock::start_at(Stage::Header, black_box(&header), now).unwrap();
            let mut last = now;
            for _ in 0..8 {
                clock.received(black_box(128));
                last = clock.deadline();
            }
            black_box(last)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
