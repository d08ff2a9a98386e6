//! The scripted traffic of the end-to-end tests, and the series the in-app module would
//! report for it: run through Envoy and through the host proxy alike.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use prompter_filter::catalog::{
    label, Metric, BUCKET_SUFFIX, COUNT_SUFFIX, SUM_MICROS_SUFFIX, SUM_SUFFIX,
};
use prompter_filter::config::Buckets;
use prompter_sample_api::SampleApi;

use crate::client::{self, Framing};
use crate::scrape::{key, Series};

pub const CREATE: &str = "/api/prompt-templates";
pub const ONE: &str = "/api/prompt-templates/{template_id}";
pub const ENSURE: &str = "/api/prompt-templates/{template_id}/ensure-version";
pub const RUN: &str = "/api/prompt-templates/{template_id}/run";
pub const HEALTH: &str = "/healthz";

/// The series the in-app module would report, built up request by request.
pub struct Expected {
    service: String,
    env: String,
    series: BTreeMap<String, f64>,
}

impl Expected {
    pub fn new(service: &str, env: &str) -> Self {
        Expected {
            service: service.into(),
            env: env.into(),
            series: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut all = vec![
            (label::SERVICE, self.service.as_str()),
            (label::ENV, self.env.as_str()),
        ];
        all.extend_from_slice(labels);
        *self.series.entry(key(name, &all)).or_default() += value;
    }

    pub fn set(&mut self, metric: Metric, value: f64) {
        let all = [
            (label::SERVICE, self.service.as_str()),
            (label::ENV, self.env.as_str()),
        ];
        self.series.insert(key(metric.name(), &all), value);
    }

    pub fn count(&mut self, metric: Metric, labels: &[(&str, &str)]) {
        self.add(metric.name(), labels, 1.0);
    }

    pub fn observed(&mut self, metric: Metric, labels: &[(&str, &str)]) {
        self.add(&format!("{}{COUNT_SUFFIX}", metric.name()), labels, 1.0);
    }

    pub fn request(&mut self, method: &str, route: &str, status: u16) {
        let status = status.to_string();
        self.count(
            Metric::RequestsTotal,
            &[
                (label::METHOD, method),
                (label::ROUTE, route),
                (label::STATUS, &status),
            ],
        );
        self.observed(
            Metric::RequestSeconds,
            &[(label::METHOD, method), (label::ROUTE, route)],
        );
    }

    pub fn probe(&mut self, provider: &str, model: &str, failed: bool) {
        let labels = [(label::PROVIDER, provider), (label::MODEL, model)];
        self.count(Metric::ProbeAttempts, &labels);
        if failed {
            self.count(Metric::ProbeFailures, &labels);
        }
        self.observed(Metric::EnsureVersionSeconds, &[(label::PROVIDER, provider)]);
    }

    pub fn series(&self) -> Series {
        Series(self.series.clone())
    }
}

/// Sends a request through Envoy and checks the status the sample API answered.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    framing: Framing,
    status: u16,
) -> client::Response {
    let response = client::send(addr, method, path, body.map(str::as_bytes), framing);
    assert_eq!(
        response.status,
        status,
        "{method} {path}: {}",
        response.text()
    );
    response
}

/// Every histogram has all its buckets, cumulative, ending in `+Inf` = `_count`, and a sum
/// in seconds (the host's `_sum`, Envoy's `_sum_microseconds`) that its buckets allow: each
/// observation lies above the bound below its bucket and at most at its own bound (half a
/// microsecond of rounding each, through Envoy).
pub fn assert_histograms_consistent(series: &Series) {
    for metric in [Metric::RequestSeconds, Metric::EnsureVersionSeconds] {
        let count_name = format!("{}{COUNT_SUFFIX}", metric.name());
        let bucket_name = format!("{}{BUCKET_SUFFIX}", metric.name());
        let buckets = Buckets::default();
        let bounds = buckets.seconds();
        for (count_key, count) in series.named(&count_name) {
            let labels = count_key.trim_start_matches(&count_name);
            let (mut previous, mut low, mut high) = (0.0, 0.0, 0.0);
            for (i, le) in buckets.labels.iter().enumerate() {
                let inner = labels.trim_start_matches('{').trim_end_matches('}');
                let mut parts: Vec<String> = inner.split(',').map(str::to_string).collect();
                parts.push(format!("{}=\"{le}\"", label::LE));
                parts.sort();
                let bucket_key = format!("{bucket_name}{{{}}}", parts.join(","));
                let value = *series
                    .0
                    .get(&bucket_key)
                    .unwrap_or_else(|| panic!("missing {bucket_key}"));
                assert!(value >= previous, "{bucket_key} = {value} < {previous}");
                let in_bucket = value - previous;
                if in_bucket > 0.0 {
                    low += in_bucket * if i == 0 { 0.0 } else { bounds[i - 1] };
                    high += in_bucket * bounds.get(i).copied().unwrap_or(f64::INFINITY);
                }
                previous = value;
            }
            assert_eq!(previous, count, "+Inf bucket of {count_key}");
            let sum = [(SUM_SUFFIX, 1.0), (SUM_MICROS_SUFFIX, 1e-6)]
                .iter()
                .find_map(|(suffix, scale)| {
                    let key = format!("{}{suffix}{labels}", metric.name());
                    series.0.get(&key).map(|v| v * scale)
                })
                .unwrap_or_else(|| panic!("no sum beside {count_key}"));
            let rounding = count * 0.5e-6 + 1e-9;
            assert!(
                sum >= low - rounding && (high.is_infinite() || sum <= high + rounding),
                "the sum of {count_key} is {sum} s, its buckets allow {low}..={high} s"
            );
        }
    }
}

/// Drives the scripted traffic mix through `at` (Envoy's listener or the host proxy) in
/// front of `sample`, and returns what the in-app module would report for it.
pub fn drive(at: SocketAddr, sample: &SampleApi) -> Expected {
    let whole = Framing::Whole;
    let mut want = Expected::new("prompter-api", "dev");

    // Templates: create, duplicate (409 → unique violation), list, get, missing, unmatched.
    let template = r#"{"name":"greet","body":"Hello {who}"}"#;
    call(at, "POST", CREATE, Some(template), whole, 201);
    want.request("POST", CREATE, 201);
    call(at, "POST", CREATE, Some(template), whole, 409);
    want.request("POST", CREATE, 409);
    want.count(
        Metric::UniqueViolations,
        &[(label::TABLE, "prompt_templates")],
    );
    call(at, "GET", CREATE, None, whole, 200);
    want.request("GET", CREATE, 200);
    call(
        at,
        "GET",
        "/api/prompt-templates/t-1?verbose=1",
        None,
        whole,
        200,
    );
    want.request("GET", ONE, 200);
    call(at, "GET", "/api/prompt-templates/t-404", None, whole, 404);
    want.request("GET", ONE, 404);
    call(at, "GET", "/nope/deeper?q=1", None, whole, 404);
    want.request("GET", "unmatched", 404);

    // Probes.
    let ensure = "/api/prompt-templates/t-1/ensure-version";
    call(
        at,
        "POST",
        &format!("{ensure}?delay_ms=300"),
        Some(r#"{"provider":"openai","model_id":"gpt-4o-2024-08-06"}"#),
        whole,
        200,
    );
    want.request("POST", ENSURE, 200);
    want.probe("openai", "gpt-4o-2024-08-06", false);
    call(
        at,
        "POST",
        ensure,
        Some(r#"{"model_id":"broken-1","provider":"google"}"#),
        whole,
        502,
    );
    want.request("POST", ENSURE, 502);
    want.probe("google", "broken-1", true);
    let nested = r#"{"meta":{"provider":"openai","model_id":"nested"},"provider":"anthropic","model_id":"claude-3-5-sonnet"}"#;
    call(at, "POST", ensure, Some(nested), Framing::Chunks(1), 200);
    want.request("POST", ENSURE, 200);
    want.probe("anthropic", "claude-3-5-sonnet", false);
    call(
        at,
        "POST",
        "/api/prompt-templates/t-999/ensure-version",
        Some(r#"{"provider":"openai","model_id":"gpt-4o"}"#),
        whole,
        404,
    );
    want.request("POST", ENSURE, 404);
    call(
        at,
        "POST",
        ensure,
        Some(r#"{"provider":"mistral","model_id":"x;.;env=.=prod;.;"}"#),
        whole,
        200,
    );
    want.request("POST", ENSURE, 200);
    want.probe("other", "x_._env_._prod_._", false);
    call(
        at,
        "POST",
        ensure,
        Some(r#"{"provider": "openai", "model_id": "#),
        whole,
        422,
    );
    want.request("POST", ENSURE, 422);
    call(
        at,
        "POST",
        ensure,
        Some(r#"{"provider":"g\u006fogle","model_id":"gemini-1.5-pro"}"#),
        Framing::Chunks(3),
        200,
    );
    want.request("POST", ENSURE, 200);
    want.probe("google", "gemini-1.5-pro", false);

    // Runs: a 2 MB output last (the contract's order) and first (before system_fingerprint),
    // a response in 1-byte chunks, a 2 MB request field before provider, no fingerprint,
    // rate limited, failed, missing.
    let run = "/api/prompt-templates/t-1/run";
    let openai = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"who":"you"}}"#;
    for order in ["", "&output_first=1"] {
        let big = call(
            at,
            "POST",
            &format!("{run}?output_bytes=2000000{order}"),
            Some(openai),
            whole,
            200,
        );
        assert!(big.body.len() > 2_000_000);
        assert_eq!(big.body.starts_with(b"{\"output\""), !order.is_empty());
        want.request("POST", RUN, 200);
        want.count(Metric::ResultsInsert, &[]);
        want.count(Metric::FingerprintPresent, &[]);
    }
    call(
        at,
        "POST",
        &format!("{run}?chunk=1"),
        Some(openai),
        whole,
        200,
    );
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    want.count(Metric::FingerprintPresent, &[]);
    let big_request = format!(
        r#"{{"variables":{{"who":"{}"}},"provider":"openai","model_id":"gpt-4o"}}"#,
        "y".repeat(2_000_000)
    );
    call(
        at,
        "POST",
        run,
        Some(&big_request),
        Framing::Chunks(65_536),
        200,
    );
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    want.count(Metric::FingerprintPresent, &[]);
    call(
        at,
        "POST",
        run,
        Some(r#"{"provider":"google","model_id":"gemini-1.5-pro"}"#),
        whole,
        200,
    );
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    call(
        at,
        "POST",
        run,
        Some(r#"{"provider":"openai","model_id":"nofp-gpt"}"#),
        whole,
        200,
    );
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    call(
        at,
        "POST",
        run,
        Some(r#"{"provider":"openai","model_id":"ratelimited-gpt"}"#),
        whole,
        429,
    );
    want.request("POST", RUN, 429);
    want.count(Metric::RateLimitHits, &[(label::ENDPOINT, RUN)]);
    call(
        at,
        "POST",
        run,
        Some(r#"{"provider":"openai","model_id":"fail-gpt"}"#),
        whole,
        500,
    );
    want.request("POST", RUN, 500);
    call(
        at,
        "POST",
        "/api/prompt-templates/t-404/run",
        Some(openai),
        whole,
        404,
    );
    want.request("POST", RUN, 404);

    // Health responses passing through set the redis gauge.
    call(at, "GET", HEALTH, None, whole, 200);
    want.request("GET", HEALTH, 200);
    sample.set_redis(false);
    call(at, "GET", HEALTH, None, whole, 503);
    want.request("GET", HEALTH, 503);
    want.set(Metric::RedisUp, 0.0);

    want
}
