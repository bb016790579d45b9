//! Overhead of one no-op operator call through the plugin ABI: JSON input
//! parse and schema check, the trait-object call across the boundary, the
//! plugin's panic guard, and the output parse and schema check.
//!
//! `static` links the fixture plugin into this binary; `dynamic` loads the
//! same crate as a shared library (built with the release profile on first
//! use, like the tests build theirs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flowrl_plugin_host::Host;

fn noop_call(c: &mut Criterion) {
    let mut host = Host::new();
    if let Err(e) = host.add_static(flowrl_test_fixtures_plugin::flowrl_plugin_root()) {
        panic!("static fixtures plugin: {e}");
    }
    let ops = host
        .library("test-fixtures")
        .and_then(|l| l.operator_library("fixtures", "{}").ok())
        .expect("fixtures operator library");
    c.bench_function("noop operator call (static)", |b| {
        b.iter(|| black_box(ops.call(black_box("Noop"), black_box("{}"), None)))
    });

    let mut dynamic = Host::new();
    if let Err(e) = dynamic.load(&support::library_in(true, support::FIXTURES)) {
        panic!("dynamic fixtures plugin: {e}");
    }
    let ops = dynamic
        .library("test-fixtures")
        .and_then(|l| l.operator_library("fixtures", "{}").ok())
        .expect("fixtures operator library");
    c.bench_function("noop operator call (dynamic .so)", |b| {
        b.iter(|| black_box(ops.call(black_box("Noop"), black_box("{}"), None)))
    });
    let input =
        r#"{"text": "The quick brown fox jumps over the lazy dog. The dog sleeps.", "top": 3}"#;
    let mut example = Host::new();
    if let Err(e) = example.load(&support::library_in(true, support::EXAMPLE)) {
        panic!("example plugin: {e}");
    }
    let text = example
        .library("example-text")
        .and_then(|l| l.operator_library("text", "{}").ok())
        .expect("text operator library");
    c.bench_function("WordCount call, 12 words (dynamic .so)", |b| {
        b.iter(|| black_box(text.call("WordCount", black_box(input), None)))
    });
}

criterion_group!(benches, noop_call);
criterion_main!(benches);
