//! The streaming JSON field scanner, natively: throughput on large bodies fed in 64 KB chunks
//! and on small API bodies, and a check that `feed` never allocates (a counting global
//! allocator; the bench fails before measuring anything if a single chunk allocates).
//!
//! `cargo bench -p prompter-filter --bench scanner`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput};
use prompter_filter::scanner::{FieldSet, JsonFieldScanner};

/// Counts every allocation and reallocation, then defers to the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHUNK: usize = 64 * 1024;
const MB: usize = 1024 * 1024;

/// The filter's default fields (`fields` in the plugin configuration).
fn fields() -> FieldSet {
    FieldSet::new(&["provider", "model_id", "system_fingerprint", "redis"]).expect("valid fields")
}

/// A run response of about `size` bytes whose `output` repeats `pattern` (already JSON-escaped),
/// with the fields the filter wants after it, as the Prompter API sends them.
fn run_response(size: usize, pattern: &str) -> Vec<u8> {
    let head = br#"{"output":""#;
    let tail = br#"","result_id":"r-1","template_id":"t-1","provider":"openai","model_id":"gpt-4o","system_fingerprint":"fp_44709d6fcb"}"#;
    let mut body = Vec::with_capacity(size + pattern.len());
    body.extend_from_slice(head);
    while body.len() + tail.len() < size {
        body.extend_from_slice(pattern.as_bytes());
    }
    body.extend_from_slice(tail);
    body
}

/// The sample API's streamed output: two escaped quotes every 34 bytes (a worst case for
/// skipping strings, since every escape stops the fast scan).
const LOREM: &str = r#"lorem ipsum \"dolor\" sit amet, "#;
/// Prose with a `\n` escape about every 200 bytes, more like real model output.
const PROSE: &str =
    "The quick brown fox jumps over the lazy dog while the model keeps writing a long \
answer, sentence after sentence, without any character that needs escaping in JSON at all, \
until the end of the paragraph.\\n";

/// Small bodies as they cross the filter on the Prompter routes (about 100–400 bytes).
fn small_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "run_request",
            br#"{"provider":"openai","model_id":"gpt-4o-mini-2024-07-18","variables":{"name":"Ada","topic":"benchmarks","tone":"dry","lines":[1,2,3],"meta":{"source":"bench","retry":false}}}"#.to_vec(),
        ),
        (
            "run_response",
            br#"{"output":"Hello Ada, here is a short poem about benchmarks: numbers go up, numbers go down, medians stay. Criterion says the change is within noise.","result_id":"r-000123","template_id":"t-1","provider":"openai","model_id":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb","usage":{"prompt_tokens":42,"completion_tokens":57,"total_tokens":99}}"#.to_vec(),
        ),
        (
            "healthz",
            br#"{"status":"ok","redis":true}"#.to_vec(),
        ),
    ]
}

fn scan(fields: &FieldSet, body: &[u8], chunk: usize) -> bool {
    let mut scanner = JsonFieldScanner::new();
    for piece in body.chunks(chunk) {
        scanner.feed(fields, black_box(piece));
    }
    black_box(scanner.field(2));
    scanner.is_complete()
}

/// Fails the bench run if feeding any chunk allocates.
fn assert_no_allocations() {
    let fields = fields();
    let mut bodies = vec![
        ("2 MB lorem".to_string(), run_response(2 * MB, LOREM)),
        ("2 MB prose".to_string(), run_response(2 * MB, PROSE)),
    ];
    bodies.extend(
        small_bodies()
            .into_iter()
            .map(|(name, body)| (name.to_string(), body)),
    );
    let mut chunks = 0u64;
    for (name, body) in &bodies {
        for chunk_size in [1, 7, CHUNK] {
            let mut scanner = JsonFieldScanner::new();
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for piece in body.chunks(chunk_size) {
                scanner.feed(&fields, piece);
            }
            let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
            assert!(scanner.is_complete(), "{name}: the body scans to its end");
            assert_eq!(
                allocations, 0,
                "{name} in {chunk_size}-byte chunks: `feed` allocated {allocations} times"
            );
            chunks += body.len().div_ceil(chunk_size) as u64;
        }
    }
    println!("scanner allocations during feed: 0 over {chunks} chunks");
}

fn large_bodies(c: &mut Criterion) {
    let fields = fields();
    let mut group = c.benchmark_group("scanner_large");
    group.sample_size(10);
    for (size_name, size) in [("2MB", 2 * MB), ("64MB", 64 * MB)] {
        for (kind, pattern) in [("lorem", LOREM), ("prose", PROSE)] {
            let body = run_response(size, pattern);
            assert!(
                scan(&fields, &body, CHUNK),
                "the bench body is complete JSON"
            );
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new(kind, size_name), &body, |b, body| {
                b.iter(|| scan(&fields, body, CHUNK))
            });
        }
    }
    group.finish();
}

fn small(c: &mut Criterion) {
    let fields = fields();
    let mut group = c.benchmark_group("scanner_small");
    for (name, body) in small_bodies() {
        assert!(scan(&fields, &body, usize::MAX), "{name} is complete JSON");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| scan(&fields, body, usize::MAX))
        });
    }
    group.finish();
}

fn main() {
    assert_no_allocations();
    let mut criterion = Criterion::default().configure_from_args();
    large_bodies(&mut criterion);
    small(&mut criterion);
    criterion.final_summary();
}
