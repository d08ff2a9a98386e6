//! `envoy/examples/custom-metrics.json`, the metrics the issue asks to declare by
//! configuration alone, through real Envoy (the Wasm and the native build) and through the
//! host proxy: every declared series equals what the traffic sent gives (tokens from JSON
//! bodies, from streamed events and after a 2 MB output; the time to the first body byte; the
//! tenants up to their cap, hostile ones sanitized), the built-in series stay exactly what
//! they were, and a `metrics` section the filter refuses stops Envoy with its message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prompter_e2e::client::{self, Response};
use prompter_e2e::envoy::{Envoy, EnvoyOptions, Launch};
use prompter_e2e::proxies::{Kind, Proxy};
use prompter_e2e::scenario::{Expected, CREATE, HEALTH, RUN};
use prompter_e2e::scrape::{key, Series};
use prompter_e2e::{host, raw_http, repo_root};
use prompter_filter::catalog::{
    label, Metric, MetricKind, BUCKET_SUFFIX, COUNT_SUFFIX, FILTER_FAILURES, SUM_MICROS_SUFFIX,
    SUM_SUFFIX,
};
use prompter_filter::config::{Buckets, Config};
use prompter_filter::labels::OTHER;
use prompter_filter::routes::UNMATCHED;

/// The example under test, from the repository root.
const EXAMPLE: &str = "envoy/examples/custom-metrics.json";
/// The three metrics the issue asks the example to declare, and their own label keys.
const TOKENS: &str = "prompter_run_tokens_total";
const FIRST_BYTE: &str = "prompter_run_first_byte_seconds";
const TENANTS: &str = "prompter_tenant_requests_total";
const KIND: &str = "kind";
const TENANT: &str = "tenant";
/// Where the tenant comes from, how many keep their name, and the label without the header.
const TENANT_HEADER: &str = "x-tenant-id";
const TENANT_CAP: usize = 20;
const NO_TENANT: &str = "none";

/// The template every run renders, and what it renders to with `who` = `you`: the sample API
/// counts a byte as a token, so this is a run's default `completion_tokens`.
const TEMPLATE: &str = r#"{"name":"greet","body":"Hello {who} and all"}"#;
const OUTPUT: &str = "Hello you and all";
const RUN_PATH: &str = "/api/prompt-templates/t-1/run";

/// A run the sample API holds this long before it answers (`?delay_ms=`): its first body byte
/// comes after it, so it lands above the bounds below it. Other runs' first bytes come within
/// `FAST`, well below it: the bounds from `FAST` on have exact counts.
const SLOW: Duration = Duration::from_millis(600);
const FAST: Duration = Duration::from_millis(250);
/// What a slow run's first byte may take at most (the bucket it lands in ends there).
const SLOW_AT_MOST: Duration = Duration::from_secs(1);
/// Between one event of a paced stream and the next: its first byte comes at once, its
/// exchange lasts more than `SLOW` (six pauses), so a time to the first byte that took the
/// whole exchange would land in the wrong bucket.
const EVENT_DELAY_MS: u64 = 150;

/// The example as Envoy and the host load it, and as the filter reads it.
fn example() -> (String, Config) {
    let text = std::fs::read_to_string(repo_root().join(EXAMPLE)).expect(EXAMPLE);
    let config = Config::parse(text.as_bytes(), |_| None)
        .unwrap_or_else(|e| panic!("{EXAMPLE} is a valid configuration: {e}"));
    (text, config)
}

/// The first-byte histogram's buckets, after checking that the example declares exactly the
/// issue's three metrics with their labels.
fn first_byte_buckets(config: &Config) -> Buckets {
    let base = [label::SERVICE, label::ENV];
    let families: Vec<(&str, MetricKind, Vec<&str>)> = config
        .declared
        .metrics
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.kind,
                m.labels.iter().map(|l| &**l).collect(),
            )
        })
        .collect();
    let with = |own: &[&'static str]| [&base[..], own].concat();
    assert_eq!(
        families,
        vec![
            (
                TOKENS,
                MetricKind::Counter,
                with(&[label::PROVIDER, label::MODEL, KIND])
            ),
            (FIRST_BYTE, MetricKind::Histogram, with(&[label::PROVIDER])),
            (
                TENANTS,
                MetricKind::Counter,
                with(&[TENANT, label::ROUTE, label::STATUS])
            ),
        ],
        "{EXAMPLE} declares the issue's metrics"
    );
    let buckets = config.declared.metrics[1].buckets.clone();
    assert_eq!(
        buckets.seconds(),
        [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
    );
    buckets
}

/// An `x-tenant-id` header as a request carries it.
#[derive(Debug, Clone, Copy)]
enum Tenant<'a> {
    Absent,
    /// A value that is a label value as it is.
    Clean(&'a str),
    /// A value as sent, and the label it becomes: sanitized, or none at all (`None`).
    Raw(&'a str, Option<&'a str>),
}

/// 2xx runs of one provider, for the first-byte histogram.
#[derive(Debug, Default)]
struct FirstBytes {
    fast: u32,
    slow: u32,
    /// What the client waited for them in all: each first byte came before its response ended.
    client_seconds: f64,
}

/// Sends requests through a proxy and works out what it must report for them.
struct Driver {
    at: SocketAddr,
    /// The built-in series, as the in-app module reports them.
    builtin: Expected,
    /// The declared series but the first-byte sums and the buckets below `FAST`, whose values
    /// depend on timing ([`check_first_byte`] checks them).
    declared: Expected,
    first_bytes: BTreeMap<&'static str, FirstBytes>,
    /// Tenants that keep their name, in the order the proxy first saw them.
    kept: Vec<String>,
    /// The first-byte bounds from `FAST` on, with their `le` labels.
    exact_bounds: Vec<(f64, String)>,
}

/// A 2xx run: the labels its provider and model get, and what is sent.
struct Run<'a> {
    provider: &'static str,
    model: &'a str,
    query: &'a str,
    body: String,
    tenant: Tenant<'a>,
}

impl Run<'_> {
    /// A run whose body names `provider` (as sent) and `model`, `"stream": true` in the body
    /// with `stream_in_body`.
    fn body(provider: &str, model: &str, stream_in_body: bool) -> String {
        let stream = if stream_in_body {
            r#","stream":true"#
        } else {
            ""
        };
        format!(
            r#"{{"provider":"{provider}","model_id":"{model}","variables":{{"who":"you"}}{stream}}}"#
        )
    }
}

impl Driver {
    fn new(at: SocketAddr, config: &Config, buckets: &Buckets) -> Driver {
        let exact_bounds = buckets
            .seconds()
            .into_iter()
            .chain([f64::INFINITY])
            .zip(buckets.labels.iter().cloned())
            .filter(|(bound, _)| *bound >= FAST.as_secs_f64())
            .collect();
        Driver {
            at,
            builtin: Expected::new(&config.service, &config.env),
            declared: Expected::new(&config.service, &config.env),
            first_bytes: BTreeMap::new(),
            kept: Vec::new(),
            exact_bounds,
        }
    }

    /// The `tenant` label of a request carrying `tenant`: the first `TENANT_CAP` distinct
    /// values keep it, later ones are `other`.
    fn tenant_label(&mut self, tenant: Tenant<'_>) -> String {
        let value = match tenant {
            Tenant::Absent | Tenant::Raw(_, None) => return NO_TENANT.to_string(),
            Tenant::Clean(value) | Tenant::Raw(_, Some(value)) => value.to_string(),
        };
        if self.kept.contains(&value) {
            value
        } else if self.kept.len() < TENANT_CAP {
            self.kept.push(value.clone());
            value
        } else {
            OTHER.to_string()
        }
    }

    /// Sends one request, checks its status, and counts it in `starlette_requests_total`
    /// (`route` as the filter derives it) and by tenant.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        tenant: Tenant<'_>,
        route: &str,
        status: u16,
    ) -> Response {
        let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
        if body.is_some() {
            headers.push((b"Content-Type", b"application/json"));
        }
        if let Tenant::Clean(value) | Tenant::Raw(value, _) = tenant {
            headers.push((TENANT_HEADER.as_bytes(), value.as_bytes()));
        }
        let request = raw_http::request(
            method.as_bytes(),
            path.as_bytes(),
            &headers,
            body.unwrap_or_default().as_bytes(),
        );
        let response = raw_http::send(self.at, &request)
            .unwrap_or_else(|e| panic!("{method} {path} via {}: {e}", self.at));
        assert_eq!(
            response.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&response.body[..response.body.len().min(500)])
        );
        self.builtin.request(method, route, status);
        let tenant = self.tenant_label(tenant);
        let status = status.to_string();
        self.declared.add(
            TENANTS,
            &[
                (TENANT, &tenant),
                (label::ROUTE, route),
                (label::STATUS, &status),
            ],
            1.0,
        );
        response
    }

    /// A run answered 200: its tokens as the sample API reports them (worked out from the
    /// request and its knobs), its first byte, and the built-in results it counts.
    fn run(&mut self, run: Run<'_>) {
        let knob = |name: &str| {
            run.query.split('&').find_map(|pair| {
                let value = pair.strip_prefix(name)?.strip_prefix('=')?;
                Some(value.parse::<u64>().expect("a numeric knob"))
            })
        };
        let streamed = knob("stream") == Some(1) || run.body.contains(r#""stream":true"#);
        let usage = (knob("usage") != Some(0)).then(|| {
            let completion = knob("output_bytes").unwrap_or(OUTPUT.len() as u64);
            (
                knob("prompt_tokens").unwrap_or(run.body.len() as u64),
                knob("completion_tokens").unwrap_or(completion),
            )
        });
        let slow = knob("delay_ms").is_some();

        let started = Instant::now();
        let path = format!("{RUN_PATH}?{}", run.query);
        let response = self.send("POST", &path, Some(&run.body), run.tenant, RUN, 200);
        let waited = started.elapsed().as_secs_f64();

        // The test's arithmetic is the sample API's: the usage it reports is the one expected.
        let text = response.text();
        match usage {
            Some((prompt, completion)) => {
                let reported = format!(
                    r#""usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"#
                );
                assert!(
                    text.contains(&reported),
                    "{path}: no {reported} in the response"
                );
            }
            None => assert!(!text.contains(r#""usage":{"#), "{path} reports no usage"),
        }
        if streamed {
            assert!(
                text.starts_with(": streamed run\n\ndata: {") && text.ends_with("data: [DONE]\n\n"),
                "{path}: a stream"
            );
        } else if knob("output_bytes").is_none() {
            assert!(
                text.contains(&format!(r#""output":"{OUTPUT}""#)),
                "{path}: {text}"
            );
        }

        if let Some((prompt, completion)) = usage {
            for (kind, tokens) in [("prompt", prompt), ("completion", completion)] {
                let labels = [
                    (label::PROVIDER, run.provider),
                    (label::MODEL, run.model),
                    (KIND, kind),
                ];
                self.declared.add(TOKENS, &labels, tokens as f64);
            }
        }
        let first_bytes = self.first_bytes.entry(run.provider).or_default();
        if slow {
            first_bytes.slow += 1;
        } else {
            first_bytes.fast += 1;
        }
        first_bytes.client_seconds += waited;
        let provider = [(label::PROVIDER, run.provider)];
        self.declared
            .add(&format!("{FIRST_BYTE}{COUNT_SUFFIX}"), &provider, 1.0);
        for (bound, le) in &self.exact_bounds {
            let below = if slow {
                *bound >= SLOW_AT_MOST.as_secs_f64()
            } else {
                true
            };
            let labels = [(label::PROVIDER, run.provider), (label::LE, le.as_str())];
            let name = format!("{FIRST_BYTE}{BUCKET_SUFFIX}");
            self.declared
                .add(&name, &labels, if below { 1.0 } else { 0.0 });
        }

        self.builtin.count(Metric::ResultsInsert, &[]);
        // The sample API gives openai runs a fingerprint, but to `nofp-` models.
        if run.provider == "openai" && !run.model.starts_with("nofp-") {
            self.builtin.count(Metric::FingerprintPresent, &[]);
        }
    }
}

/// The traffic: runs of every kind (JSON, streamed, 2 MB, without usage, slow, failing), and
/// requests from more tenants than the cap keeps, hostile ones among them.
fn drive(at: SocketAddr, config: &Config, buckets: &Buckets) -> Driver {
    let mut d = Driver::new(at, config, buckets);
    d.send("POST", CREATE, Some(TEMPLATE), Tenant::Absent, CREATE, 201);

    // Label values built to close the tenant's tag and open others (`"`, `,` for Prometheus'
    // text; `=.=` and `;.;` for the tags Envoy cuts from a stat name), one too long, one with
    // a space, an empty one (as good as none).
    let hostile = Tenant::Raw(
        r#"evil",route="/x";env=.=prod;.;"#,
        Some("evil__route__/x__env_._prod_._"),
    );
    let long = "t".repeat(100);
    let long = Tenant::Raw(&long, Some(&long[..64]));
    let spaced = Tenant::Raw("acme corp", Some("acme_corp"));
    let empty = Tenant::Raw("", None);

    let openai = Run::body("openai", "gpt-4o", false);
    let paced = format!("stream=1&event_delay_ms={EVENT_DELAY_MS}");
    let held = format!("delay_ms={}", SLOW.as_millis());
    let runs = [
        // JSON runs: usage as the sample API counts it, then given by the knobs.
        (
            "openai",
            "gpt-4o",
            "",
            openai.clone(),
            Tenant::Clean("acme"),
        ),
        (
            "openai",
            "gpt-4o",
            "prompt_tokens=1000&completion_tokens=2345",
            openai.clone(),
            Tenant::Clean("globex"),
        ),
        // The response in 1-byte chunks.
        (
            "google",
            "gemini-1.5-pro",
            "chunk=1",
            Run::body("google", "gemini-1.5-pro", false),
            hostile,
        ),
        // No usage: no tokens; still a first byte.
        (
            "anthropic",
            "claude-3-5-sonnet",
            "usage=0",
            Run::body("anthropic", "claude-3-5-sonnet", false),
            Tenant::Absent,
        ),
        // A provider outside the allow-list is `other`, as in the built-ins.
        (
            OTHER,
            "mistral-large",
            "prompt_tokens=5&completion_tokens=6",
            Run::body("mistral", "mistral-large", false),
            spaced,
        ),
        // `usage` after a 2 MB output.
        (
            "openai",
            "gpt-4o-mini",
            "output_bytes=2000000",
            Run::body("openai", "gpt-4o-mini", false),
            long,
        ),
        // Streamed: usage on the last event before [DONE]; events cut into 1- and 7-byte
        // chunks; asked for in the body; without usage; paced.
        (
            "openai",
            "gpt-4o",
            "stream=1",
            openai.clone(),
            Tenant::Clean("acme"),
        ),
        (
            "google",
            "gemini-1.5-pro",
            "stream=1&chunk=1&prompt_tokens=7&completion_tokens=11",
            Run::body("google", "gemini-1.5-pro", false),
            empty,
        ),
        (
            "openai",
            "nofp-gpt",
            "chunk=7",
            Run::body("openai", "nofp-gpt", true),
            Tenant::Clean("initech"),
        ),
        (
            "openai",
            "gpt-4o",
            "stream=1&usage=0",
            openai.clone(),
            Tenant::Clean("acme"),
        ),
        (
            "openai",
            "gpt-4o",
            &paced,
            openai.clone(),
            Tenant::Clean("globex"),
        ),
        // Held before it answers: its first byte lands in a known bucket.
        ("openai", "gpt-4o", &held, openai.clone(), Tenant::Absent),
    ];
    for (provider, model, query, body, tenant) in runs {
        d.run(Run {
            provider,
            model,
            query,
            body,
            tenant,
        });
    }

    // Runs not answered 2xx: no tokens, no first byte; counted by tenant.
    let limited = Run::body("openai", "ratelimited-gpt", false);
    for query in ["", "?stream=1"] {
        let path = format!("{RUN_PATH}{query}");
        d.send(
            "POST",
            &path,
            Some(&limited),
            Tenant::Clean("acme"),
            RUN,
            429,
        );
        d.builtin
            .count(Metric::RateLimitHits, &[(label::ENDPOINT, RUN)]);
    }
    let failed = Run::body("openai", "fail-gpt", false);
    d.send("POST", RUN_PATH, Some(&failed), Tenant::Absent, RUN, 500);
    let missing = "/api/prompt-templates/t-404/run";
    d.send(
        "POST",
        missing,
        Some(&openai),
        Tenant::Clean("globex"),
        RUN,
        404,
    );
    d.send(
        "GET",
        "/nope/deeper",
        None,
        Tenant::Clean("acme"),
        UNMATCHED,
        404,
    );
    // A health response passing through sets the gauge (as the example's health poll does).
    d.send("GET", HEALTH, None, empty, HEALTH, 200);
    d.builtin.set(Metric::RedisUp, 1.0);

    // 25 tenants more: the cap is reached among them; those seen before keep their name,
    // later ones are `other`, a hostile one too.
    let tenants: Vec<String> = (1..=25).map(|i| format!("tenant-{i:02}")).collect();
    for tenant in &tenants {
        d.send("GET", CREATE, None, Tenant::Clean(tenant), CREATE, 200);
    }
    for tenant in [&tenants[0], &tenants[24]] {
        d.send("GET", CREATE, None, Tenant::Clean(tenant), CREATE, 200);
    }
    d.send("GET", CREATE, None, hostile, CREATE, 200);
    let late_hostile = Tenant::Raw("late\",tenant=\"x", Some("late__tenant__x"));
    d.send("GET", CREATE, None, late_hostile, CREATE, 200);
    d.send("GET", CREATE, None, Tenant::Absent, CREATE, 200);
    assert_eq!(d.kept.len(), TENANT_CAP, "the traffic reaches the cap");
    assert!(
        tenants.iter().any(|t| !d.kept.contains(t)) && d.kept.contains(&tenants[0]),
        "some of the 25 keep their name, later ones do not"
    );
    d
}

/// The declared series a proxy exports, parsed from its exposition.
fn declared_series(proxy: &Proxy) -> Series {
    let text = match proxy {
        Proxy::Envoy(envoy, _) => client::get(envoy.admin, "/stats/prometheus"),
        Proxy::Host(proxy) => client::get(proxy.metrics, prompter_host::exporter::METRICS_PATH),
    }
    .text();
    let names: Vec<String> = [TOKENS.to_string(), TENANTS.to_string()]
        .into_iter()
        .chain(
            [BUCKET_SUFFIX, COUNT_SUFFIX, SUM_SUFFIX, SUM_MICROS_SUFFIX]
                .iter()
                .map(|suffix| format!("{FIRST_BYTE}{suffix}")),
        )
        .collect();
    prompter_host::testing::series::parse_filtered(&text, |name| names.iter().any(|n| n == name))
}

/// `series` without what depends on timing: the first-byte sums, and its buckets below `FAST`.
fn exact(series: &Series, driver: &Driver) -> Series {
    let kept_bounds: Vec<String> = driver
        .exact_bounds
        .iter()
        .map(|(_, le)| format!("{}=\"{le}\"", label::LE))
        .collect();
    let bucket = format!("{FIRST_BYTE}{BUCKET_SUFFIX}{{");
    let sums = [SUM_SUFFIX, SUM_MICROS_SUFFIX].map(|s| format!("{FIRST_BYTE}{s}{{"));
    Series(
        series
            .0
            .iter()
            .filter(|(k, _)| !sums.iter().any(|s| k.starts_with(s)))
            .filter(|(k, _)| !k.starts_with(&bucket) || kept_bounds.iter().any(|b| k.contains(b)))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    )
}

/// The first-byte histogram of each provider: cumulative buckets ending in `_count`, a sum
/// its buckets allow, at least the slow runs' hold and at most what the client waited.
fn check_first_byte(
    series: &Series,
    driver: &Driver,
    config: &Config,
    buckets: &Buckets,
    kind: Kind,
) {
    let bounds = buckets.seconds();
    for (provider, runs) in &driver.first_bytes {
        let labels = [
            (label::SERVICE, config.service.as_str()),
            (label::ENV, config.env.as_str()),
            (label::PROVIDER, provider),
        ];
        let (mut previous, mut low, mut high) = (0.0, 0.0, 0.0);
        for (i, le) in buckets.labels.iter().enumerate() {
            let bucket_labels = [&labels[..], &[(label::LE, le.as_str())]].concat();
            let name = format!("{FIRST_BYTE}{BUCKET_SUFFIX}");
            let value = series
                .get(&name, &bucket_labels)
                .unwrap_or_else(|| panic!("{kind:?}: no {}", key(&name, &bucket_labels)));
            assert!(
                value >= previous,
                "{kind:?}: {provider} le={le}: {value} < {previous}"
            );
            let in_bucket = value - previous;
            low += in_bucket * if i == 0 { 0.0 } else { bounds[i - 1] };
            high += in_bucket * bounds.get(i).copied().unwrap_or(f64::INFINITY);
            previous = value;
        }
        let count = f64::from(runs.fast + runs.slow);
        assert_eq!(previous, count, "{kind:?}: {provider}: +Inf is the count");
        // Envoy keeps the sum as whole microseconds; the host exports real histograms.
        let (suffix, scale) = match kind {
            Kind::Host => (SUM_SUFFIX, 1.0),
            _ => (SUM_MICROS_SUFFIX, 1e-6),
        };
        let sum_name = format!("{FIRST_BYTE}{suffix}");
        let sum = series
            .get(&sum_name, &labels)
            .unwrap_or_else(|| panic!("{kind:?}: no {}", key(&sum_name, &labels)))
            * scale;
        let rounding = count * 0.5e-6 + 1e-9;
        let held = f64::from(runs.slow) * SLOW.as_secs_f64();
        assert!(
            sum >= low.max(held) - rounding && sum <= high.min(runs.client_seconds) + rounding,
            "{kind:?}: {provider}: the first bytes took {sum} s in all; the buckets allow \
             {low}..={high} s, the slow runs were held {held} s, the client waited {} s",
            runs.client_seconds
        );
    }
}

/// Series summed by their `route` and `status` labels.
fn by_route_and_status<'a>(
    series: impl Iterator<Item = (&'a String, f64)>,
) -> BTreeMap<(String, String), f64> {
    let mut sums = BTreeMap::new();
    for (key, value) in series {
        let label_of = |k: &str| {
            let start = key.find(&format!("{k}=\"")).expect(k) + k.len() + 2;
            key[start..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        *sums
            .entry((label_of(label::ROUTE), label_of(label::STATUS)))
            .or_default() += value;
    }
    sums
}

/// Runs the traffic through `kind` with the example and compares every series.
fn every_declared_series_follows_the_traffic(kind: Kind) {
    let (text, config) = example();
    let buckets = first_byte_buckets(&config);
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    // One worker, one VM: the tenant cap is per VM.
    let proxy = match kind {
        Kind::Host => {
            let mut options = host::options(sample.addr, &text);
            options.workers = 1;
            Proxy::Host(host::start(options))
        }
        Kind::Envoy | Kind::NativeEnvoy => {
            let mut options = EnvoyOptions::new(sample.addr, &text);
            options.concurrency = 1;
            if kind == Kind::NativeEnvoy {
                options = options.native();
            }
            Proxy::Envoy(Envoy::start(options), kind)
        }
    };

    let driver = drive(proxy.listener(), &config, &buckets);
    // The built-ins are what they are without declared metrics.
    proxy.until_equal(&driver.builtin.series());

    let expected = driver.declared.series();
    let start = Instant::now();
    let series = loop {
        let series = declared_series(&proxy);
        let diff = exact(&series, &driver).diff(&expected);
        if diff.is_empty() {
            break series;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{kind:?}: the declared series differ from the traffic's:\n{diff}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    check_first_byte(&series, &driver, &config, &buckets, kind);

    // Tenants by route and status add up to the built-in requests by route and status.
    let by_tenant = by_route_and_status(series.named(TENANTS));
    let builtin = proxy.scrape();
    let by_request = by_route_and_status(builtin.named(Metric::RequestsTotal.name()));
    assert_eq!(by_tenant, by_request, "{kind:?}");

    // The native module counts its failed hooks (the Wasm build's would be Envoy's VM stats).
    match &proxy {
        Proxy::Envoy(envoy, Kind::NativeEnvoy) => {
            let text = client::get(envoy.admin, "/stats/prometheus").text();
            assert!(
                text.contains(&format!("{FILTER_FAILURES}{{}} 0")),
                "no hook failed:\n{text}"
            );
        }
        Proxy::Host(proxy) => assert_eq!(host::filter_failures(proxy.metrics), 0.0),
        Proxy::Envoy(..) => {}
    }
}

#[test]
fn the_example_through_envoy_with_the_wasm_module() {
    every_declared_series_follows_the_traffic(Kind::Envoy);
}

#[test]
fn the_example_through_envoy_with_the_native_module() {
    every_declared_series_follows_the_traffic(Kind::NativeEnvoy);
}

#[test]
fn the_example_through_the_host() {
    every_declared_series_follows_the_traffic(Kind::Host);
}

#[test]
fn a_metrics_section_the_filter_refuses_stops_envoy_with_its_message() {
    let (text, _) = example();
    let example: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut reserved = example.clone();
    reserved["metrics"][3]["labels"][0]["name"] = "le".into();
    let mut clash = example;
    clash["metrics"][3]["name"] = Metric::RequestsTotal.name().into();
    let cases = [
        (
            reserved,
            "`metrics[3].labels[0].name`: `le` is reserved for histogram buckets and summaries"
                .to_string(),
        ),
        (
            clash,
            format!(
                "`metrics[3].name`: `{0}` clashes with the built-in `{0}`",
                Metric::RequestsTotal.name()
            ),
        ),
    ];

    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    // The bootstrap generator refuses these too: they are written in by hand.
    let marker = r#"{"service": "to-be-replaced"}"#;
    for (bad, reason) in &cases {
        for native in [false, true] {
            let mut options = EnvoyOptions::new(sample.addr, marker);
            options.concurrency = 1;
            if native {
                options = options.native();
            }
            let mut launch = Launch::generated(&options);
            launch.bootstrap = launch.bootstrap.replace(marker, &bad.to_string());
            let mut envoy = Envoy::spawn_bootstrap(&launch, &options);
            let status = envoy.wait_exit(Duration::from_secs(30));
            let log = envoy.log();
            assert!(
                status.is_some_and(|s| !s.success()),
                "native: {native}: Envoy must refuse to start:\n{log}"
            );
            let message = format!("prompter-filter: invalid plugin configuration: {reason}");
            assert!(
                log.contains(&message),
                "native: {native}: the refusal names the field and the reason ({message}):\n{log}"
            );
        }
    }
}
