//! Replay: the sample recordings (`tests/data/`, JSON Lines and HAR) through the real filter
//! give exact series; bad recordings are refused whole, naming each bad line or entry; the
//! `replay` command prints the exposition or fails with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX};
use prompter_host::replay::{self, Error, Format, Origin, Recording, DEFAULT_PLUGIN_CONFIG};
use prompter_host::state::{PluginSetup, Shared};
use prompter_host::testing::{self, series, Series};

const ENSURE: &str = "/api/prompt-templates/{template_id}/ensure-version";
const RUN: &str = "/api/prompt-templates/{template_id}/run";
const CREATE: &str = "/api/prompt-templates";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn replay_file(name: &str, setup: PluginSetup) -> (Recording, Shared) {
    let recording = replay::load(&data(name), None).expect("the sample is valid");
    let shared = replay::replay(&testing::default_module(), setup, &recording.exchanges)
        .expect("the sample replays");
    (recording, shared)
}

fn default_setup() -> PluginSetup {
    PluginSetup {
        plugin_config: DEFAULT_PLUGIN_CONFIG.as_bytes().to_vec(),
        ..PluginSetup::default()
    }
}

fn name(metric: Metric, suffix: &str) -> String {
    format!("{}{suffix}", metric.name())
}

/// A series name, its labels other than service and env, and its value.
type Row<'a> = (String, &'a [(&'a str, &'a str)], f64);

/// Series with `service="prompter-api"`, `env="dev"` added to each.
fn expected(rows: &[Row<'_>]) -> Series {
    Series(
        rows.iter()
            .map(|(name, labels, value)| {
                let mut all = vec![(label::SERVICE, "prompter-api"), (label::ENV, "dev")];
                all.extend_from_slice(labels);
                (series::key(name, &all), *value)
            })
            .collect(),
    )
}

/// Equal keys, and values equal up to float rounding (`_sum` adds seconds).
fn assert_same(got: &Series, want: &Series) {
    let keys = |s: &Series| s.0.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "{}", got.diff(want));
    for (key, want_value) in &want.0 {
        let got_value = got.0[key];
        assert!(
            (got_value - want_value).abs() <= 1e-9 * want_value.abs().max(1.0),
            "{key}: {got_value}, expected {want_value}"
        );
    }
}

/// A histogram's cumulative bucket counts, in the default bounds' order, `+Inf` last.
fn buckets(series: &Series, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    prompter_filter::config::Buckets::default()
        .labels
        .into_iter()
        .map(|le| {
            let mut all = vec![(label::SERVICE, "prompter-api"), (label::ENV, "dev")];
            all.extend_from_slice(labels);
            all.push((label::LE, &le));
            series
                .get(&format!("{name}{BUCKET_SUFFIX}"), &all)
                .unwrap_or_else(|| panic!("no {name} bucket le={le} for {labels:?}"))
        })
        .collect()
}

#[test]
fn the_jsonl_sample_gives_exact_series() {
    let (recording, shared) = replay_file("exchanges.jsonl", default_setup());
    assert_eq!(recording.exchanges.len(), 10);
    assert!(recording.warnings.is_empty());
    let got = series::parse(&shared.metrics.encode());

    let requests = Metric::RequestsTotal.name().to_string();
    let (count, sum) = (
        name(Metric::RequestSeconds, COUNT_SUFFIX),
        name(Metric::RequestSeconds, SUM_SUFFIX),
    );
    let (probe_count, probe_sum) = (
        name(Metric::EnsureVersionSeconds, COUNT_SUFFIX),
        name(Metric::EnsureVersionSeconds, SUM_SUFFIX),
    );
    let post = (label::METHOD, "POST");
    let get = (label::METHOD, "GET");
    let openai = [(label::PROVIDER, "openai"), (label::MODEL, "gpt-4o")];
    #[rustfmt::skip]
    let want = expected(&[
        (requests.clone(), &[post, (label::ROUTE, CREATE), (label::STATUS, "201")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, CREATE), (label::STATUS, "409")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, ENSURE), (label::STATUS, "200")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, ENSURE), (label::STATUS, "503")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, ENSURE), (label::STATUS, "0")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, RUN), (label::STATUS, "200")], 2.0),
        (requests.clone(), &[post, (label::ROUTE, RUN), (label::STATUS, "429")], 1.0),
        (requests.clone(), &[get, (label::ROUTE, "/healthz"), (label::STATUS, "200")], 1.0),
        (requests.clone(), &[get, (label::ROUTE, "unmatched"), (label::STATUS, "404")], 1.0),
        (count.clone(), &[post, (label::ROUTE, CREATE)], 2.0),
        (sum.clone(), &[post, (label::ROUTE, CREATE)], 0.0125 + 0.004),
        (count.clone(), &[post, (label::ROUTE, ENSURE)], 3.0),
        (sum.clone(), &[post, (label::ROUTE, ENSURE)], 0.25 + 1.2 + 3.0),
        (count.clone(), &[post, (label::ROUTE, RUN)], 3.0),
        (sum.clone(), &[post, (label::ROUTE, RUN)], 0.8 + 0.06 + 0.002),
        (count.clone(), &[get, (label::ROUTE, "/healthz")], 1.0),
        (sum.clone(), &[get, (label::ROUTE, "/healthz")], 0.001),
        (count.clone(), &[get, (label::ROUTE, "unmatched")], 1.0),
        (sum.clone(), &[get, (label::ROUTE, "unmatched")], 0.0005),
        (Metric::ProbeAttempts.name().into(), &openai, 2.0),
        (Metric::ProbeFailures.name().into(), &openai, 1.0),
        (probe_count.clone(), &[(label::PROVIDER, "openai")], 2.0),
        (probe_sum.clone(), &[(label::PROVIDER, "openai")], 1.45),
        (Metric::ResultsInsert.name().into(), &[], 2.0),
        (Metric::FingerprintPresent.name().into(), &[], 1.0),
        (Metric::RedisUp.name().into(), &[], 1.0),
        (Metric::UniqueViolations.name().into(), &[(label::TABLE, "prompt_templates")], 1.0),
        (Metric::RateLimitHits.name().into(), &[(label::ENDPOINT, RUN)], 1.0),
    ]);
    assert_same(&got.without_buckets(), &want);

    // Recorded durations land in their buckets exactly (`le` is inclusive: 250 ms ≤ 0.25).
    let request_seconds = Metric::RequestSeconds.name();
    //                 0.005 .01 .025 .05 .075 .1  .25 .5  .75  1  2.5  5  7.5  10  +Inf
    assert_eq!(
        buckets(&got, request_seconds, &[post, (label::ROUTE, ENSURE)]),
        [0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 2., 3., 3., 3., 3.]
    );
    assert_eq!(
        buckets(&got, request_seconds, &[post, (label::ROUTE, RUN)]),
        [1., 1., 1., 1., 2., 2., 2., 2., 2., 3., 3., 3., 3., 3., 3.]
    );
    assert_eq!(
        buckets(&got, request_seconds, &[post, (label::ROUTE, CREATE)]),
        [1., 1., 2., 2., 2., 2., 2., 2., 2., 2., 2., 2., 2., 2., 2.]
    );
    // The google probe got no status (the stream was reset): the client hung up, so it is
    // no probe attempt; the request itself is counted (`status="0"`, above).
    assert!(got
        .named(Metric::ProbeAttempts.name())
        .all(|(k, _)| !k.contains("google")));

    // The clock went to line 5's `start_time` (00:00:01Z), then on by each duration.
    let start = replay::parse_rfc3339("2026-01-01T00:00:01Z").unwrap();
    let after = 250 + 1200 + 3000 + 800 + 60 + 2 + 1;
    assert_eq!(
        shared.clock.now_nanos(),
        start + after * 1_000_000 + 500_000
    );
}

#[test]
fn the_har_sample_gives_exact_series() {
    let (recording, shared) = replay_file("session.har", default_setup());
    assert_eq!(recording.exchanges.len(), 6);
    let first = &recording.exchanges[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("GET", "/healthz")
    );
    assert_eq!(first.authority.as_deref(), Some("prompter.example"));
    // Chrome's HTTP/2 pseudo-headers are dropped; names are lowercased.
    assert_eq!(
        first.request_headers,
        vec![(b"accept".to_vec(), b"application/json".to_vec())]
    );
    assert_eq!(
        recording.exchanges[2].path,
        "/api/prompt-templates/t-9/run?debug=1"
    );
    assert_eq!(recording.exchanges[3].status, None);
    // Entry 5 was saved without its body: said, not skipped silently.
    assert_eq!(recording.warnings.len(), 1, "{:?}", recording.warnings);
    assert_eq!(recording.warnings[0].origin, Origin::Entry(5));
    assert!(recording.warnings[0]
        .message
        .contains("response body not recorded"));

    let got = series::parse(&shared.metrics.encode());
    let requests = Metric::RequestsTotal.name().to_string();
    let (count, sum) = (
        name(Metric::RequestSeconds, COUNT_SUFFIX),
        name(Metric::RequestSeconds, SUM_SUFFIX),
    );
    let post = (label::METHOD, "POST");
    let get = (label::METHOD, "GET");
    let template = "/api/prompt-templates/{template_id}";
    #[rustfmt::skip]
    let want = expected(&[
        (requests.clone(), &[get, (label::ROUTE, "/healthz"), (label::STATUS, "200")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, CREATE), (label::STATUS, "409")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, RUN), (label::STATUS, "200")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, ENSURE), (label::STATUS, "0")], 1.0),
        (requests.clone(), &[post, (label::ROUTE, RUN), (label::STATUS, "429")], 1.0),
        (requests.clone(), &[get, (label::ROUTE, template), (label::STATUS, "200")], 1.0),
        (count.clone(), &[get, (label::ROUTE, "/healthz")], 1.0),
        (sum.clone(), &[get, (label::ROUTE, "/healthz")], 0.00325),
        (count.clone(), &[post, (label::ROUTE, CREATE)], 1.0),
        (sum.clone(), &[post, (label::ROUTE, CREATE)], 0.025),
        (count.clone(), &[post, (label::ROUTE, RUN)], 2.0),
        (sum.clone(), &[post, (label::ROUTE, RUN)], 1.5 + 0.007),
        (count.clone(), &[post, (label::ROUTE, ENSURE)], 1.0),
        (sum.clone(), &[post, (label::ROUTE, ENSURE)], 10.0),
        (count.clone(), &[get, (label::ROUTE, template)], 1.0),
        (sum.clone(), &[get, (label::ROUTE, template)], 0.04),
        (Metric::ResultsInsert.name().into(), &[], 1.0),
        // The fingerprint came in a base64-encoded response body.
        (Metric::FingerprintPresent.name().into(), &[], 1.0),
        (Metric::RedisUp.name().into(), &[], 0.0),
        (Metric::UniqueViolations.name().into(), &[(label::TABLE, "prompt_templates")], 1.0),
        (Metric::RateLimitHits.name().into(), &[(label::ENDPOINT, RUN)], 1.0),
    ]);
    assert_same(&got.without_buckets(), &want);
    // The only probe got no response (`status` 0, 10 s): no probe attempt, no failure.
    assert_eq!(got.count_of(Metric::ProbeAttempts), 0);
    assert_eq!(got.count_of(Metric::EnsureVersionSeconds), 0);
    // 10 000 ms is exactly the last finite bound.
    assert_eq!(
        buckets(
            &got,
            Metric::RequestSeconds.name(),
            &[(label::METHOD, "POST"), (label::ROUTE, ENSURE)]
        ),
        [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1.]
    );
    // `startedDateTime` with an offset: 10:00+01:00 is 09:00Z; the last entry starts at
    // 09:00:21Z and takes 40 ms.
    let last = replay::parse_rfc3339("2026-01-01T09:00:21.040Z").unwrap();
    assert_eq!(shared.clock.now_nanos(), last);
    assert_eq!(
        recording.exchanges[0].start_nanos,
        replay::parse_rfc3339("2026-01-01T09:00:00Z")
    );
}

#[test]
fn plugin_configuration_and_environment_reach_the_filter() {
    let setup = PluginSetup {
        // Polling on: replay never ticks, so the gauge only comes from recorded `/healthz`.
        plugin_config: br#"{"health":{"interval_seconds":15},"unique_violations":[]}"#.to_vec(),
        env: vec![("METRICS_ENV".into(), "replay".into())],
        ..PluginSetup::default()
    };
    let (_, shared) = replay_file("exchanges.jsonl", setup);
    let got = series::parse(&shared.metrics.encode());
    assert!(got.named(Metric::UniqueViolations.name()).next().is_none());
    let labels = [(label::SERVICE, "prompter-api"), (label::ENV, "replay")];
    assert_eq!(got.get(Metric::RedisUp.name(), &labels), Some(1.0));
    assert_eq!(got.get(Metric::ResultsInsert.name(), &labels), Some(2.0));
    assert!(shared.logs.texts().iter().all(|l| !l.contains("http call")));
}

#[test]
fn a_refused_plugin_configuration_is_an_error_with_the_filters_reason() {
    let recording = replay::load(&data("exchanges.jsonl"), Some(Format::JsonLines)).unwrap();
    let setup = PluginSetup {
        plugin_config: br#"{"helth":{}}"#.to_vec(),
        ..PluginSetup::default()
    };
    let Err(error) = replay::replay(&testing::default_module(), setup, &recording.exchanges) else {
        panic!("the filter refuses the configuration");
    };
    assert!(matches!(error, Error::Start(_)), "{error:?}");
    assert!(error.to_string().contains("helth"), "{error}");
}

fn problems(text: &str, format: Format) -> Vec<String> {
    match replay::parse(text, format) {
        Err(Error::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected bad lines, got {other:?}"),
    }
}

const GOOD: &str = r#"{"method":"GET","path":"/healthz","status":200,"duration_ms":1}"#;

#[test]
fn every_bad_line_is_named_and_nothing_is_replayed() {
    let text = [
        "# comment, then a blank line",
        "",
        GOOD,
        r#"{"method":"GET","path":"/x","duration_ms":1,"colour":"red"}"#,
        r#"{"method":"GET","duration_ms":1}"#,
        r#"{"method":"GET","path":"/x","duration_ms":1"#,
        r#"{"method":"POST","path":"/x","duration_ms":1,"request_body_base64":"not base64!"}"#,
        "   ",
        GOOD,
    ]
    .join("\n");
    let problems = problems(&text, Format::JsonLines);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems[0].starts_with("line 4: unknown field `colour`, expected one of"),
        "{}",
        problems[0]
    );
    assert_eq!(problems[1], "line 5: missing field `path`");
    assert!(
        problems[2].starts_with("line 6: invalid JSON at column 43: EOF while parsing"),
        "{}",
        problems[2]
    );
    assert!(
        problems[3].starts_with("line 7: `request_body_base64`: invalid base64"),
        "{}",
        problems[3]
    );
    let message = replay::parse(&text, Format::JsonLines)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("4 bad lines, nothing replayed:\n  line 4: unknown field"),
        "{message}"
    );
}

#[test]
fn values_are_checked_not_guessed() {
    let line =
        |fields: &str| format!(r#"{{"method":"POST","path":"/x","duration_ms":1,{fields}}}"#);
    let cases = [
        (
            line(r#""status":1000"#),
            "`status`: 1000 is not an HTTP status",
        ),
        (line(r#""status":"200""#), "invalid type: string \"200\""),
        (
            line(r#""request_body":"a","request_body_base64":"YQ==""#),
            "both `request_body` and `request_body_base64`",
        ),
        (
            line(r#""response_body":"{}""#),
            "a response body or headers but no `status`",
        ),
        (
            line(r#""start_time":"2026-01-01 00:00""#),
            "`start_time`: `2026-01-01 00:00` is not an RFC 3339 time",
        ),
        (
            line(r#""request_headers":{":path":"/y"}"#),
            "request header `:path`: pseudo-headers",
        ),
        (
            r#"{"method":"GET","path":"https://h/x","duration_ms":1}"#.into(),
            "`path`: `https://h/x` does not start with `/`",
        ),
        (
            r#"{"method":"GET","path":"/x","duration_ms":-3}"#.into(),
            "`duration_ms`: -3 is not a duration",
        ),
        (
            r#"{"method":"G T","path":"/x","duration_ms":1}"#.into(),
            "`method`: `G T` is not an HTTP method",
        ),
    ];
    for (text, want) in cases {
        let problems = problems(&text, Format::JsonLines);
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        assert!(
            problems[0].starts_with(&format!("line 1: {want}")),
            "{text}: {}",
            problems[0]
        );
    }
    // Status 0 is "no response", like null; base64 without padding is fine.
    let ok = replay::parse(
        &line(r#""status":0,"request_body_base64":"eyJhIjoxfQ""#),
        Format::JsonLines,
    )
    .unwrap();
    assert_eq!(ok.exchanges[0].status, None);
    assert_eq!(ok.exchanges[0].request_body, br#"{"a":1}"#);
    assert!(matches!(
        replay::parse("# nothing\n\n", Format::JsonLines),
        Err(Error::File(m)) if m.contains("no exchanges")
    ));
}

#[test]
fn bad_har_files_and_entries_are_named() {
    let file_error = |text: &str| match replay::parse(text, Format::Har) {
        Err(Error::File(message)) => message,
        other => panic!("expected a file error, got {other:?}"),
    };
    assert_eq!(
        file_error(r#"{"log":{"version":"1.2"}}"#),
        "not a HAR file: no `log.entries`"
    );
    assert_eq!(
        file_error(r#"{"log":{"entries":{}}}"#),
        "not a HAR file: `log.entries` is not an array"
    );
    assert_eq!(
        file_error(r#"{"entries":[]}"#),
        "not a HAR file: no top-level `log` object"
    );
    assert!(file_error("{\"log\":").starts_with("not a HAR file: EOF while parsing"));
    assert!(file_error(r#"{"log":{"entries":[]}}"#).contains("no exchanges"));

    let entry = |url: &str, content: &str| {
        format!(
            r#"{{"time":1,"request":{{"method":"GET","url":"{url}"}},"response":{{"status":200,"content":{content}}}}}"#
        )
    };
    let entries = [
        entry("https://h/ok", r#"{"text":"{}"}"#),
        entry("/relative", r#"{"text":"{}"}"#),
        entry("https://h/x", r#"{"text":"%%%","encoding":"base64"}"#),
        entry("https://h/x", r#"{"text":"x","encoding":"gzip"}"#),
        r#"{"time":1,"response":{"status":200}}"#.to_string(),
        r#"{"time":1,"request":{"method":"GET","url":"https://h/"},"response":{"status":-1}}"#
            .to_string(),
    ];
    let text = format!(r#"{{"log":{{"entries":[{}]}}}}"#, entries.join(","));
    let problems = problems(&text, Format::Har);
    assert_eq!(
        problems,
        [
            "log.entries[1]: `request.url`: `/relative` is not an absolute URL",
            "log.entries[2]: `response.content.text`: invalid base64 (Invalid symbol 37, offset 0.)",
            "log.entries[3]: `response.content.encoding`: `gzip` is not supported (only `base64`)",
            "log.entries[4]: missing field `request`",
            "log.entries[5]: `response.status`: -1 is not an HTTP status (100–999, or 0 for no response)",
        ]
    );
    let message = replay::parse(&text, Format::Har).unwrap_err().to_string();
    assert!(
        message.starts_with("5 bad entries, nothing replayed:"),
        "{message}"
    );
}

#[test]
fn the_format_comes_from_the_extension_else_the_content() {
    let har = r#"{"log":{"entries":[]}}"#;
    assert_eq!(Format::detect(Path::new("a.HAR"), ""), Format::Har);
    assert_eq!(Format::detect(Path::new("a.jsonl"), har), Format::JsonLines);
    assert_eq!(
        Format::detect(Path::new("a.ndjson"), har),
        Format::JsonLines
    );
    assert_eq!(Format::detect(Path::new("capture"), har), Format::Har);
    assert_eq!(
        Format::detect(Path::new("capture"), GOOD),
        Format::JsonLines
    );
    assert_eq!(
        Format::detect(Path::new("capture.json"), &format!("{GOOD}\n{GOOD}")),
        Format::JsonLines
    );
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prompter-host"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn the_command_prints_the_exposition() {
    let wasm = testing::default_wasm();
    let file = data("exchanges.jsonl");
    let output = cli(&[
        file.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--env",
        "METRICS_SERVICE=recorded",
        "--env",
        "METRICS_ENV=staging",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    assert!(stdout.ends_with("# EOF\n"), "{stdout}");
    let labels = [
        (label::SERVICE, "recorded"),
        (label::ENV, "staging"),
        (label::TABLE, "prompt_templates"),
    ];
    assert_eq!(
        series::parse(&stdout).get(Metric::UniqueViolations.name(), &labels),
        Some(1.0)
    );
}

#[test]
fn the_command_fails_on_a_bad_line_before_loading_anything() {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-bad-line.jsonl");
    std::fs::write(&file, format!("{GOOD}\n{{\"method\":\"GET\"}}\n")).unwrap();
    // The wasm path does not exist either: the recording is checked first.
    let output = cli(&[file.to_str().unwrap(), "--wasm", "/nonexistent.wasm"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        format!(
            "prompter-host replay: {}: 1 bad line, nothing replayed:\n  line 2: missing field `path`\n",
            file.display()
        )
    );

    let output = cli(&[
        data("exchanges.jsonl").to_str().unwrap(),
        "--wasm",
        "/nonexistent.wasm",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read wasm module /nonexistent.wasm")
            && stderr.contains("build it with scripts/build-wasm"),
        "{stderr}"
    );
}
