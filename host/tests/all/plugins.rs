//! Two plugin configurations served by one VM (two listeners sharing a `vm_id`), each in
//! front of its own API: each polls its own health endpoint and learns its own routes, and
//! neither takes the other's lease or route table.

use prompter_filter::catalog::{label, Metric};
use prompter_host::state::{HttpCallRequest, HttpCallResponse, PluginSetup};
use prompter_host::testing::{self, Harness};
use prompter_host::vm::FilterInstance;
use prompter_sample_api::openapi::{self, Mode};

const STATS: &str = "/api/admin/stats";

fn first(config: &str) -> Harness {
    Harness::builder()
        .plugin_config(config)
        .cluster("prompter_api")
        .build()
        .expect("the filter starts")
}

/// A second plugin in the same VM as `first`: its own configuration, the same shared data.
fn second(first: &Harness, config: &str) -> FilterInstance {
    let setup = PluginSetup {
        plugin_config: config.as_bytes().to_vec(),
        clusters: vec!["prompter_api".into()],
        ..PluginSetup::default()
    };
    FilterInstance::new(&testing::default_module(), first.shared.clone(), setup).unwrap()
}

fn path_of(call: &HttpCallRequest) -> String {
    call.headers
        .iter()
        .find(|(k, _)| k == b":path")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn answer(body: Vec<u8>) -> Option<HttpCallResponse> {
    Some(HttpCallResponse {
        headers: vec![(b":status".to_vec(), b"200".to_vec())],
        body,
        trailers: Vec::new(),
    })
}

#[test]
fn each_plugin_polls_its_own_health_endpoint() {
    let a = first(r#"{"health":{"path":"/healthz"},"openapi":{"enabled":false}}"#);
    let mut b = second(
        &a,
        r#"{"service":"billing","health":{"path":"/status"},"openapi":{"enabled":false}}"#,
    );
    a.tick().unwrap();
    b.tick().unwrap();
    let polled: Vec<String> = a
        .take_http_calls()
        .iter()
        .chain(&b.take_http_calls())
        .map(path_of)
        .collect();
    assert_eq!(
        polled,
        ["/healthz", "/status"],
        "one poll each, each its own"
    );
}

#[test]
fn each_plugin_learns_its_own_routes() {
    let a = first(r#"{"health":{"interval_seconds":0}}"#);
    let mut b = second(
        &a,
        r#"{"service":"billing","health":{"interval_seconds":0},"openapi":{"path":"/billing/openapi.json"}}"#,
    );
    a.tick().unwrap();
    let calls = a.take_http_calls();
    assert_eq!(
        calls.iter().map(path_of).collect::<Vec<_>>(),
        ["/openapi.json"]
    );
    a.answer_http_call(calls[0].token, answer(openapi::serve(Mode::Standard)))
        .unwrap();

    // The second plugin fetches its own document (its lease is its own) and keeps its table
    // empty while that fetch fails: it does not take up the first plugin's routes.
    b.tick().unwrap();
    let calls = b.take_http_calls();
    assert_eq!(
        calls.iter().map(path_of).collect::<Vec<_>>(),
        ["/billing/openapi.json"]
    );
    b.on_http_call_response(calls[0].token, None).unwrap();
    let id = b.create_stream().unwrap();
    let request = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":path".to_vec(), STATS.as_bytes().to_vec()),
    ];
    b.on_request_headers(id, request, true).unwrap();
    b.on_response_headers(id, vec![(b":status".to_vec(), b"200".to_vec())], true)
        .unwrap();
    b.finish_stream(id).unwrap();

    let route_of = |service: &str| {
        a.series()
            .named(Metric::RequestsTotal.name())
            .filter(|(k, _)| k.contains(&format!("{}=\"{service}\"", label::SERVICE)))
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    let billing = route_of("billing");
    assert_eq!(billing.len(), 1, "{billing:?}");
    assert!(billing[0].contains("route=\"unmatched\""), "{billing:?}");
}
