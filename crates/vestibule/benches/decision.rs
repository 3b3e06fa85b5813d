//! The per-request decision on a cache hit (issue 17; target ≤ 1 µs):
//! trust, dialect mapping, account (cached), policy and profile
//! rendering, per common dialect, against a real SQLite store (never
//! touched on a hit). See BENCHMARKS.md; its allocations are counted by
//! `tests/decision_allocs.rs`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;

#[path = "support/decision.rs"]
mod decision;

fn decisions(c: &mut Criterion) {
    let (rt, cases) = decision::cases();
    let _entered = rt.enter();
    for case in &cases {
        c.bench_function(&format!("decision on a cache hit ({})", case.name), |b| {
            b.iter(|| {
                decision::decision(black_box(&case.state), black_box(&case.headers))
                    .now_or_never()
                    .expect("a cache hit decides without waiting")
            })
        });
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
