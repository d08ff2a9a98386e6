//! Route matching: a request path to its route template, with the Prompter API's default
//! routes, for the paths the API sees (literal, one parameter, nested, unmatched, query).
//!
//! `cargo bench -p prompter-filter --bench routes`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use prompter_filter::config::Config;

fn find(c: &mut Criterion) {
    let config = Config::parse(b"{}", |_| None).expect("the default configuration parses");
    let routes = &config.routes;
    let mut group = c.benchmark_group("routes_find");
    for (name, path) in [
        ("list", "/api/prompt-templates"),
        ("one", "/api/prompt-templates/t-123"),
        ("run", "/api/prompt-templates/t-123/run?output_bytes=10"),
        (
            "ensure_version",
            "/api/prompt-templates/t-123/ensure-version",
        ),
        ("healthz", "/healthz"),
        ("unmatched", "/static/js/app.0123456789abcdef.js"),
    ] {
        group.bench_with_input(BenchmarkId::from_parameter(name), path, |b, path| {
            b.iter(|| routes.find(black_box(path)))
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, find);
criterion::criterion_main!(benches);
