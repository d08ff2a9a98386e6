//! The filter in real Envoy, in front of the sample Prompter API: scripted traffic, then the
//! exact series Envoy's `/stats/prometheus` must print, as the in-app module would have.

use std::net::SocketAddr;
use std::time::Duration;

use prompter_e2e::client::{post, Framing};
use prompter_e2e::envoy::{Build, Envoy, EnvoyOptions};
use prompter_e2e::scenario::{
    self, assert_histograms_consistent, call, Expected, CREATE, ENSURE, HEALTH,
};
use prompter_e2e::scrape::{self, key, Series};
use prompter_filter::catalog::{label, Metric, BUCKET_SUFFIX};

const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;

#[test]
fn scripted_traffic_gives_every_series_of_the_in_app_module() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(sample.addr, NO_POLLING));
    let expected = scenario::drive(envoy.listener, sample.api()).series();
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
    health_poll_once_per_interval_per_proxy(Build::Wasm);
}

#[test]
fn the_native_module_polls_once_per_interval_per_proxy_too() {
    health_poll_once_per_interval_per_proxy(Build::Native);
}

fn health_poll_once_per_interval_per_proxy(build: Build) {
    let api = std::sync::Arc::new(prompter_sample_api::SampleApi::with_redis(false));
    let sample = prompter_sample_api::spawn_with("127.0.0.1:0".parse().unwrap(), api).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, r#"{"health": {"interval_seconds": 1}}"#);
    options.concurrency = 4;
    options.build = build;
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

    // Wasm: four workers tick every second, and the shared-data lease lets one of them poll.
    // Native: the main thread polls.
    let before = sample.api().request_count();
    std::thread::sleep(Duration::from_secs(5));
    let polls = sample.api().request_count() - before;
    assert!(
        (4..=6).contains(&polls),
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

/// How late a request may reach Envoy's scrape past the flush interval (1 s by default): the
/// tick timer's own lateness, the scrape's 20 ms polling and a loaded machine. A tick that
/// arrives a hair early and skips its flush costs a whole further interval, well past it.
const FLUSH_MARGIN: Duration = Duration::from_millis(500);

/// Counter increments are batched in the VM and sent on the root context's tick: a request
/// is in Envoy's scrape within one flush interval (and the margin), wherever in the interval
/// it ends. Twelve requests at phases spread over the interval.
#[test]
fn a_request_reaches_envoys_scrape_within_one_flush_interval() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut options = EnvoyOptions::new(sample.addr, NO_POLLING);
    options.concurrency = 1;
    let envoy = Envoy::start(options);
    let interval = prompter_filter::config::VmOptions::default().stats_flush;
    let labels = [
        (label::SERVICE, "prompter-api"),
        (label::ENV, "dev"),
        (label::METHOD, "GET"),
        (label::ROUTE, CREATE),
        (label::STATUS, "200"),
    ];
    let mut lags = Vec::new();
    for i in 0..12u32 {
        std::thread::sleep(interval * (i * 7 % 12) / 12);
        call(envoy.listener, "GET", CREATE, None, Framing::Whole, 200);
        let answered = std::time::Instant::now();
        let want = f64::from(i + 1);
        loop {
            let counted = scrape::envoy(envoy.admin).get(Metric::RequestsTotal.name(), &labels);
            if counted == Some(want) {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(30),
                "request {want} never counted: {counted:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lags.push(answered.elapsed());
    }
    eprintln!("lags: {lags:?}");
    let worst = lags.iter().max().copied().unwrap_or_default();
    assert!(
        worst <= interval + FLUSH_MARGIN,
        "a request took {worst:?} to reach the scrape (flush interval {interval:?}): {lags:?}"
    );
}
