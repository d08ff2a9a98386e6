//! The filter in real Envoy, in front of the sample Prompter API: scripted traffic, then the
//! exact series Envoy's `/stats/prometheus` must print, as the in-app module would have.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use prompter_e2e::client::{self, post, Framing};
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::scrape::{self, key, Series};
use prompter_filter::catalog::{
    format_bound, label, Metric, BUCKET_SUFFIX, COUNT_SUFFIX, DEFAULT_BUCKETS, INF_BOUND,
};

const CREATE: &str = "/api/prompt-templates";
const ONE: &str = "/api/prompt-templates/{template_id}";
const ENSURE: &str = "/api/prompt-templates/{template_id}/ensure-version";
const RUN: &str = "/api/prompt-templates/{template_id}/run";
const HEALTH: &str = "/healthz";
const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;

/// The series the in-app module would report, built up request by request.
struct Expected {
    service: String,
    env: String,
    series: BTreeMap<String, f64>,
}

impl Expected {
    fn new(service: &str, env: &str) -> Self {
        Expected {
            service: service.into(),
            env: env.into(),
            series: BTreeMap::new(),
        }
    }

    fn add(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut all = vec![
            (label::SERVICE, self.service.as_str()),
            (label::ENV, self.env.as_str()),
        ];
        all.extend_from_slice(labels);
        *self.series.entry(key(name, &all)).or_default() += value;
    }

    fn set(&mut self, metric: Metric, value: f64) {
        let all = [
            (label::SERVICE, self.service.as_str()),
            (label::ENV, self.env.as_str()),
        ];
        self.series.insert(key(metric.name(), &all), value);
    }

    fn count(&mut self, metric: Metric, labels: &[(&str, &str)]) {
        self.add(metric.name(), labels, 1.0);
    }

    fn observed(&mut self, metric: Metric, labels: &[(&str, &str)]) {
        self.add(&format!("{}{COUNT_SUFFIX}", metric.name()), labels, 1.0);
    }

    fn request(&mut self, method: &str, route: &str, status: u16) {
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

    fn probe(&mut self, provider: &str, model: &str, failed: bool) {
        let labels = [(label::PROVIDER, provider), (label::MODEL, model)];
        self.count(Metric::ProbeAttempts, &labels);
        if failed {
            self.count(Metric::ProbeFailures, &labels);
        }
        self.observed(Metric::EnsureVersionSeconds, &[(label::PROVIDER, provider)]);
    }

    fn series(&self) -> Series {
        Series(self.series.clone())
    }
}

/// Sends a request through Envoy and checks the status the sample API answered.
fn call(
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

/// Every histogram has all its buckets, cumulative, ending in `+Inf` = `_count`.
fn assert_histograms_consistent(series: &Series) {
    for metric in [Metric::RequestSeconds, Metric::EnsureVersionSeconds] {
        let count_name = format!("{}{COUNT_SUFFIX}", metric.name());
        let bucket_name = format!("{}{BUCKET_SUFFIX}", metric.name());
        let mut bounds: Vec<String> = DEFAULT_BUCKETS.iter().map(|b| format_bound(*b)).collect();
        bounds.push(INF_BOUND.to_string());
        for (count_key, count) in series.named(&count_name) {
            let labels = count_key.trim_start_matches(&count_name);
            let mut previous = 0.0;
            for le in &bounds {
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
                previous = value;
            }
            assert_eq!(previous, count, "+Inf bucket of {count_key}");
        }
    }
}

#[test]
fn scripted_traffic_gives_every_series_of_the_in_app_module() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, NO_POLLING));
    let at = envoy.listener;
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

    // Runs: a 2 MB output before system_fingerprint, a response in 1-byte chunks, a 2 MB
    // request field before provider, no fingerprint, rate limited, failed, missing.
    let run = "/api/prompt-templates/t-1/run";
    let openai = r#"{"provider":"openai","model_id":"gpt-4o","variables":{"who":"you"}}"#;
    let big = call(
        at,
        "POST",
        &format!("{run}?output_bytes=2000000"),
        Some(openai),
        whole,
        200,
    );
    assert!(big.body.len() > 2_000_000);
    want.request("POST", RUN, 200);
    want.count(Metric::ResultsInsert, &[]);
    want.count(Metric::FingerprintPresent, &[]);
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
    sample.api().set_redis(false);
    call(at, "GET", HEALTH, None, whole, 503);
    want.request("GET", HEALTH, 503);
    want.set(Metric::RedisUp, 0.0);

    let expected = want.series();
    let scraped = scrape::envoy_until_equal(envoy.admin, &expected);
    assert_histograms_consistent(&scraped);

    // The 300 ms probe lands between the 0.25 s and 0.5 s bounds.
    let openai_bucket = |le: &str| {
        let name = format!("{}{BUCKET_SUFFIX}", Metric::EnsureVersionSeconds.name());
        scraped.get(
            &name,
            &[
                (label::SERVICE, "prompter-api"),
                (label::ENV, "dev"),
                (label::PROVIDER, "openai"),
                (label::LE, le),
            ],
        )
    };
    assert_eq!(openai_bucket("0.25"), Some(0.0));
    assert_eq!(openai_bucket("0.5"), Some(1.0));
}

#[test]
fn envoys_own_503_for_a_dead_upstream_is_counted() {
    let dead: SocketAddr = ([127, 0, 0, 1], prompter_e2e::free_port()).into();
    let envoy = Envoy::start(EnvoyOptions::new(
        dead,
        r#"{"health": {"interval_seconds": 1}}"#,
    ));
    let at = envoy.listener;
    call(at, "GET", CREATE, None, Framing::Whole, 503);
    call(
        at,
        "POST",
        "/api/prompt-templates/t-1/ensure-version",
        Some(r#"{"provider":"openai","model_id":"gpt-4o"}"#),
        Framing::Whole,
        503,
    );

    let mut want = Expected::new("prompter-api", "dev");
    want.request("GET", CREATE, 503);
    want.request("POST", ENSURE, 503);
    want.probe("openai", "gpt-4o", true);
    // The health poll cannot reach the API: redis is reported down.
    want.set(Metric::RedisUp, 0.0);
    let expected = want.series();
    assert_histograms_consistent(&scrape::envoy_until_equal(envoy.admin, &expected));
}

#[test]
fn redis_gauge_follows_the_health_poll_once_per_interval_per_proxy() {
    let api = std::sync::Arc::new(prompter_sample_api::SampleApi::with_redis(false));
    let sample = prompter_sample_api::spawn_with("127.0.0.1:0".parse().unwrap(), api).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, r#"{"health": {"interval_seconds": 1}}"#);
    options.concurrency = 4;
    let envoy = Envoy::start(options);
    let gauge = |s: &Series| {
        s.get(
            Metric::RedisUp.name(),
            &[(label::SERVICE, "prompter-api"), (label::ENV, "dev")],
        )
    };

    scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
        gauge(s) == Some(0.0)
    });
    sample.api().set_redis(true);
    scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
        gauge(s) == Some(1.0)
    });

    // Four workers tick every second; the shared-data lease lets one of them poll.
    let before = sample.api().request_count();
    std::thread::sleep(Duration::from_secs(5));
    let polls = sample.api().request_count() - before;
    assert!(
        (2..=6).contains(&polls),
        "{polls} health polls in 5 s with a 1 s interval"
    );
    // Polls are not requests through the filter: no request series at all.
    assert_eq!(
        scrape::envoy(envoy.admin)
            .named(Metric::RequestsTotal.name())
            .count(),
        0
    );
}

#[test]
fn service_and_env_come_from_the_vm_environment() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, NO_POLLING);
    options.env = vec![
        ("METRICS_SERVICE".into(), "svc-e2e".into()),
        ("METRICS_ENV".into(), "staging".into()),
    ];
    let envoy = Envoy::start(options);
    call(envoy.listener, "GET", HEALTH, None, Framing::Whole, 200);

    let mut want = Expected::new("svc-e2e", "staging");
    want.request("GET", HEALTH, 200);
    want.set(Metric::RedisUp, 1.0);
    let expected = want.series();
    assert_histograms_consistent(&scrape::envoy_until_equal(envoy.admin, &expected));
}

#[test]
fn a_configuration_that_makes_no_sense_is_refused_at_start_with_the_field_and_reason() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, NO_POLLING);
    options.env = vec![("METRICS_SERVICE".into(), "bad;service".into())];
    let mut envoy = Envoy::spawn(options);
    let status = envoy.wait_exit(Duration::from_secs(30));
    let log = envoy.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "Envoy must refuse to start:\n{log}"
    );
    assert!(
        log.contains("invalid plugin configuration: `service (from $METRICS_SERVICE)`: `bad;service` is not a usable label value"),
        "the refusal names the field and the reason:\n{log}"
    );
}

#[test]
fn a_stat_with_table_and_le_keys_keeps_both_labels_apart() {
    // `le` is the tail of `table`: with unanchored tag regexes Envoy would cut `le` out of
    // `table=.=...;.;`. The unique-violation counter and the histogram buckets must both
    // come out whole.
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, NO_POLLING));
    let template = r#"{"name":"dup","body":"x"}"#;
    assert_eq!(post(envoy.listener, CREATE, template).status, 201);
    assert_eq!(post(envoy.listener, CREATE, template).status, 409);
    let scraped = scrape::envoy_until(envoy.admin, Duration::from_secs(10), |s| {
        s.named(Metric::UniqueViolations.name()).count() == 1
    });
    let unique: Vec<_> = scraped.named(Metric::UniqueViolations.name()).collect();
    assert_eq!(
        unique[0].0,
        &key(
            Metric::UniqueViolations.name(),
            &[
                (label::SERVICE, "prompter-api"),
                (label::ENV, "dev"),
                (label::TABLE, "prompt_templates")
            ]
        )
    );
    assert_histograms_consistent(&scraped);
}
