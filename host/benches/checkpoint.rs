//! Criterion benchmarks of audit checkpoints: what one costs to sign (and
//! to verify), and to keep (`Store::put_checkpoint`: one write and one
//! flush to disk). The server signs one per `checkpoint_every` decisions
//! (default 1000) or per `checkpoint_interval_ms`, so the cost per decision
//! is these figures divided by the decisions between checkpoints.
//!
//! Run: `cargo bench -p verdict --bench checkpoint`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use verdict::checkpoint::{CheckpointSigner, CheckpointVerifier};
use verdict::store::Store;

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn benches(c: &mut Criterion) {
    let signer = CheckpointSigner::from_seed("verdict.example.com/prod", [7; 32]);
    let verifier: CheckpointVerifier = signer.verifier_key().parse().unwrap();
    let note = signer.sign(123_456, HASH).unwrap();
    c.bench_function("checkpoint/sign", |b| {
        b.iter(|| signer.sign(black_box(123_456), black_box(HASH)).unwrap())
    });
    c.bench_function("checkpoint/verify", |b| {
        b.iter(|| verifier.verify(black_box(&note)).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    c.bench_function("checkpoint/sign_and_keep", |b| {
        b.iter(|| {
            let note = signer.sign(black_box(123_456), HASH).unwrap();
            store.put_checkpoint(&note).unwrap()
        })
    });
}

criterion_group!(checkpoint, benches);
criterion_main!(checkpoint);
