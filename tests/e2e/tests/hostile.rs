//! Hostile header and body values (quotes, newlines, NUL, invalid UTF-8, the tag delimiters
//! `;.;` and `=.=`, braces, an exposition line break-out, 1 MB values) in the model id, the
//! provider, `content-type`, `:path` and `:method`, through real Envoy and the host proxy:
//! each request gets what the API answers directly (or the proxy's own refusal of a request
//! that is not HTTP), no label is added or changed, and Prometheus' own parser (promtool, and
//! a real Prometheus scraping both) reads the expositions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prompter_e2e::client::Response;
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::exposition::{label_problems, promtool_parses};
use prompter_e2e::prometheus::{self, Prometheus, Target};
use prompter_e2e::raw_http;
use prompter_e2e::{client, host, scrape};
use prompter_filter::catalog::{label, Metric};

const NO_POLLING: &str = r#"{"health": {"interval_seconds": 0}}"#;
const MEGABYTE: usize = 1 << 20;

/// A hostile value twice: as the text of a JSON string (escaped where JSON needs it) and as
/// raw bytes for a header, a path or a method.
struct Hostile {
    name: &'static str,
    json: Vec<u8>,
    raw: Vec<u8>,
}

fn hostile_values() -> Vec<Hostile> {
    let pair = |name, json: &[u8], raw: &[u8]| Hostile {
        name,
        json: json.to_vec(),
        raw: raw.to_vec(),
    };
    vec![
        pair("quotes", br#"a\"b'c\\"#, b"a\"b'c\\"),
        pair("newlines", br"a\nb\r\nc", b"a\nb\r\nc"),
        pair("nul", br"a\u0000b", b"a\0b"),
        pair("invalid-utf8", b"a\xff\xfe\xc3b", b"a\xff\xfe\xc3b"),
        pair("tag-delimiters", b"x;.;env=.=prod;.;", b"x;.;env=.=prod;.;"),
        pair("tag-equals", b"=.=service=.=evil", b"=.=service=.=evil"),
        pair("braces", b"{}{route}", b"{}{route}"),
        pair(
            "line-break-out",
            br#"a\"} 1\nevil_total{env=\"prod"#,
            b"a\"} 1\nevil_total{env=\"prod",
        ),
        pair("megabyte", &vec![b'm'; MEGABYTE], &vec![b'm'; MEGABYTE]),
    ]
}

/// One hostile request: what it is, and its bytes.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

fn json_body(provider: &[u8], model: &[u8]) -> Vec<u8> {
    [
        &br#"{"provider":""#[..],
        provider,
        br#"","model_id":""#,
        model,
        br#""}"#,
    ]
    .concat()
}

const PROBE: &[u8] = b"/api/prompt-templates/t-1/ensure-version";
const RUN: &[u8] = b"/api/prompt-templates/t-1/run";
const JSON: (&[u8], &[u8]) = (b"Content-Type", b"application/json");

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for value in hostile_values() {
        let mut case = |what: &str, bytes: Vec<u8>| {
            cases.push(Case {
                name: format!("{} in {what}", value.name),
                bytes,
            })
        };
        let post = |target: &[u8], headers: &[(&[u8], &[u8])], body: &[u8]| {
            raw_http::request(b"POST", target, headers, body)
        };
        case(
            "model_id",
            post(PROBE, &[JSON], &json_body(b"openai", &value.json)),
        );
        case(
            "provider and model_id",
            post(PROBE, &[JSON], &json_body(&value.json, &value.json)),
        );
        case(
            "run provider",
            post(RUN, &[JSON], &json_body(&value.json, b"gpt-4o")),
        );
        let content_type = [&b"application/json; v="[..], &value.raw].concat();
        case(
            "content-type",
            post(
                PROBE,
                &[(b"Content-Type", &content_type)],
                &json_body(b"openai", b"gpt-4o"),
            ),
        );
        let path = [
            &b"/api/prompt-templates/"[..],
            &value.raw,
            b"/ensure-version",
        ]
        .concat();
        case(
            ":path",
            post(&path, &[JSON], &json_body(b"openai", b"gpt-4o")),
        );
        case(
            ":method",
            raw_http::request(&value.raw, b"/api/prompt-templates", &[], b""),
        );
    }
    cases
}

/// A sample API with template `t-1`, as every run starts from.
fn fresh_sample() -> prompter_sample_api::BackgroundServer {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let created = client::post(
        sample.addr,
        "/api/prompt-templates",
        r#"{"name":"hostile","body":"Hello"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    sample
}

/// Sends every case to `at`, in order; `None` where the connection failed.
fn drive(at: SocketAddr) -> Vec<Option<Response>> {
    cases()
        .iter()
        .map(|case| raw_http::send(at, &case.bytes).ok())
        .collect()
}

/// A status a proxy gives a request it refuses before any filter runs: not HTTP (400), not
/// HTTP/1.1 (426: Envoy reads a request line cut by a bare newline as HTTP/0.9), a header or
/// target too large (431, 414, 413).
fn is_proxy_refusal(status: u16) -> bool {
    matches!(status, 400 | 413 | 414 | 426 | 431)
}

/// Each case through `proxy` got the direct answer, or a refusal of what the API itself
/// refused or could not have been sent as HTTP; prints the comparison.
fn assert_undisturbed(whose: &str, direct: &[Option<Response>], proxied: &[Option<Response>]) {
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for ((case, direct), proxied) in cases().iter().zip(direct).zip(proxied) {
        let status = |r: &Option<Response>| r.as_ref().map_or(0, |r| r.status);
        let (d, p) = (status(direct), status(proxied));
        table.push(format!(
            "{whose:>6} | {:<40} | direct {d} | proxied {p}",
            case.name
        ));
        let same = direct.is_some() && direct == proxied;
        if !(same || (is_proxy_refusal(p) && (d == 0 || d >= 400))) {
            wrong.push(table.last().unwrap().clone());
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "answers differ from the API's:\n{}",
        wrong.join("\n")
    );
}

/// The requests the upstream served through the proxy (the filter saw at least these): its
/// count, less the template created directly.
fn served(sample: &prompter_sample_api::BackgroundServer) -> f64 {
    let response = client::get(sample.addr, "/__sample/requests");
    let total = serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()["total"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}", response.text()));
    total - 1.0
}

/// Scrapes `path` on `addr` until its request counter reaches `at_least`; returns the text.
fn exposition_after(addr: SocketAddr, path: &str, at_least: f64) -> String {
    let start = Instant::now();
    loop {
        let text = client::get(addr, path).text();
        let requests: f64 = scrape::parse(&text)
            .named(Metric::RequestsTotal.name())
            .map(|(_, v)| v)
            .sum();
        if requests >= at_least {
            return text;
        }
        // Generous: on a loaded 2-core machine the flush and the scrape can lag.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{requests} requests counted, the API served {at_least}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_exposition_sound(whose: &str, text: &str) {
    if let Err(error) = promtool_parses(text.as_bytes()) {
        panic!("promtool cannot parse {whose} exposition:\n{error}");
    }
    let (problems, ours) = label_problems(text, "prompter-api", "dev");
    assert!(ours > 0, "{whose}: none of our series");
    eprintln!("{whose} exposition: {ours} series of ours, promtool parses it, labels sound");
    assert!(problems.is_empty(), "{whose}:\n{}", problems.join("\n"));
    // The tag delimiters came out as one model value, not as a tag.
    assert!(
        text.contains(&format!("{}=\"x_._env_._prod_._\"", label::MODEL)),
        "{whose}: the hostile model id is not there as one value"
    );
}

#[test]
fn hostile_values_leave_labels_and_traffic_alone_through_envoy_and_the_host() {
    let direct_sample = fresh_sample();
    let direct = drive(direct_sample.addr);

    let envoy_sample = fresh_sample();
    let envoy = Envoy::start(EnvoyOptions::new(envoy_sample.addr, NO_POLLING));
    let through_envoy = drive(envoy.listener);
    let host_sample = fresh_sample();
    let proxy = host::start(host::options(host_sample.addr, NO_POLLING));
    let through_host = drive(proxy.listen);

    assert_undisturbed("envoy", &direct, &through_envoy);
    assert_undisturbed("host", &direct, &through_host);
    // Both proxies still serve, and every case was answered.
    assert_eq!(client::get(envoy.listener, "/healthz").status, 200);
    assert_eq!(client::get(proxy.listen, "/healthz").status, 200);
    assert!(through_envoy
        .iter()
        .chain(&through_host)
        .all(Option::is_some));

    let envoy_text = exposition_after(envoy.admin, "/stats/prometheus", served(&envoy_sample));
    assert_exposition_sound("Envoy's", &envoy_text);
    let host_text = exposition_after(
        proxy.metrics,
        prompter_host::exporter::METRICS_PATH,
        served(&host_sample),
    );
    assert_exposition_sound("the host's", &host_text);

    // A real Prometheus scrapes both: every target up, the hostile model id stored as one
    // label value, and no series of ours in any other env.
    let prometheus = Prometheus::start(&prometheus::static_config(&[
        Target::new("prompter-envoy", envoy.admin),
        Target::new("prompter-host", proxy.metrics),
    ]));
    let probes = Metric::ProbeAttempts.name();
    let start = Instant::now();
    loop {
        let up = prometheus.query("up == 1").unwrap_or_default().len();
        let hostile = prometheus
            .query(&format!(
                r#"{probes}{{model="x_._env_._prod_._",env="dev"}}"#
            ))
            .unwrap_or_default()
            .len();
        // Sent with provider `openai` and with a hostile provider (`other`), on two targets.
        if up == 2 && hostile == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Prometheus: {up} targets up, the hostile model in {hostile} of 4 series:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let ours = format!(r#"__name__=~"({})(_bucket|_count|_sum)?""#, names.join("|"));
    let elsewhere = prometheus
        .query(&format!(r#"{{{ours}, {}!="dev"}}"#, label::ENV))
        .unwrap();
    assert!(
        elsewhere.is_empty(),
        "series with another env: {elsewhere:?}"
    );
    let services = prometheus
        .label_values(label::SERVICE, &format!("{{{ours}}}"))
        .unwrap();
    assert_eq!(services, ["prompter-api"]);
}
