//! Routes learned from the API's OpenAPI document: fetched on the first tick and every
//! interval (the harness answers the fetch), labelled by their template; a broken or huge
//! document is refused with a log line and the table stays; every worker uses what one learned.

use prompter_filter::catalog::{label, Metric};
use prompter_host::state::{HttpCallResponse, PluginSetup};
use prompter_host::testing::{self, Harness, Request};
use prompter_host::vm::FilterInstance;
use prompter_sample_api::openapi::{self, Mode};

const NO_POLLING: &str = r#"{"health":{"interval_seconds":0}}"#;
const STATS: &str = "/api/admin/stats";
const USER: &str = "/api/admin/users/{user_id}";

fn filter(config: &str) -> Harness {
    Harness::builder()
        .plugin_config(config)
        .cluster("prompter_api")
        .build()
        .expect("the filter starts")
}

fn answer(status: &str, body: Vec<u8>) -> Option<HttpCallResponse> {
    Some(HttpCallResponse {
        headers: vec![
            (b":status".to_vec(), status.as_bytes().to_vec()),
            (b"content-type".to_vec(), b"application/json".to_vec()),
        ],
        body,
        trailers: Vec::new(),
    })
}

fn document(mode: Mode) -> Option<HttpCallResponse> {
    answer("200", openapi::serve(mode))
}

/// Ticks; the filter must fetch `path` from the API's cluster, and gets `response`.
fn fetch_at(filter: &Harness, path: &str, response: Option<HttpCallResponse>) {
    filter.tick().unwrap();
    let calls = filter.take_http_calls();
    assert_eq!(calls.len(), 1, "one fetch: {calls:?}");
    let call = &calls[0];
    let header = |name: &[u8]| {
        call.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(call.cluster, "prompter_api");
    assert_eq!(header(b":method").as_deref(), Some("GET"));
    assert_eq!(header(b":path").as_deref(), Some(path));
    assert_eq!(call.timeout_ms, 5_000);
    filter.answer_http_call(call.token, response).unwrap();
}

fn fetch(filter: &Harness, response: Option<HttpCallResponse>) {
    fetch_at(filter, "/openapi.json", response);
}

fn no_fetch(filter: &Harness) {
    filter.tick().unwrap();
    assert_eq!(filter.take_http_calls(), Vec::new());
}

/// The route label a GET of `path` is counted under.
fn route_of(filter: &Harness, path: &str) -> String {
    let before = filter.series();
    filter.exchange(&Request::get(path)).unwrap();
    let after = filter.series();
    let grown: Vec<String> = after
        .named(Metric::RequestsTotal.name())
        .filter(|(key, value)| before.0.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(grown.len(), 1, "{grown:?}");
    let key = &grown[0];
    let start = key.find("route=\"").expect("a route label") + "route=\"".len();
    let len = key[start..].find('"').expect("a closed label");
    key[start..start + len].to_string()
}

fn logged(filter: &Harness, text: &str) -> usize {
    filter.logs().iter().filter(|l| l.contains(text)).count()
}

#[test]
fn a_route_only_the_document_has_gets_its_template_as_the_route_label() {
    let filter = filter(NO_POLLING);
    assert_eq!(route_of(&filter, STATS), "unmatched");
    fetch(&filter, document(Mode::Standard));
    assert_eq!(route_of(&filter, STATS), STATS);
    assert_eq!(route_of(&filter, "/api/admin/stats?verbose=1"), STATS);
    // Configured routes are unchanged.
    assert_eq!(
        route_of(&filter, "/api/prompt-templates/t-1"),
        "/api/prompt-templates/{template_id}"
    );
    let series = filter.series();
    let labels = [
        (label::SERVICE, "prompter-api"),
        (label::ENV, "dev"),
        (label::METHOD, "GET"),
        (label::ROUTE, STATS),
        (label::STATUS, "200"),
    ];
    assert_eq!(series.get(Metric::RequestsTotal.name(), &labels), Some(2.0));
    assert_eq!(
        logged(
            &filter,
            "OpenAPI document /openapi.json: learned 1 route (6 paths: 5 configured, 0 skipped): /api/admin/stats"
        ),
        1,
        "{:#?}",
        filter.logs()
    );
}

#[test]
fn a_broken_or_huge_document_is_refused_with_a_log_line_and_the_table_stays() {
    let filter = filter(NO_POLLING);
    fetch(&filter, document(Mode::Standard));
    let many: String = (0..1001).map(|i| format!(r#""/r{i}":{{}},"#)).collect();
    let refusals = [
        (
            document(Mode::Broken),
            "refused: it is not JSON: it ends early",
        ),
        (
            document(Mode::Huge),
            "refused: it is larger than 4194304 bytes (`openapi.max_bytes`)",
        ),
        (
            answer(
                "200",
                format!(r#"{{"paths":{{{many}"/x":{{}}}}}}"#).into_bytes(),
            ),
            "refused: it has more than 1000 paths (`openapi.max_paths`)",
        ),
        (
            answer("200", br#"{"paths": {"/a": {}} "#.to_vec()),
            "refused: it is not JSON: it ends early",
        ),
        (
            answer("200", br#"{"openapi": "3.1.0"}"#.to_vec()),
            "refused: it has no top-level `paths` object",
        ),
        (
            answer("200", b"[]".to_vec()),
            "refused: it is not a JSON object",
        ),
        (answer("404", Vec::new()), "answered 404"),
        (None, "no answer (reset, timeout or no upstream)"),
    ];
    for (response, reason) in refusals {
        filter.advance_seconds(60.0);
        fetch(&filter, response);
        let line = format!(
            "OpenAPI document /openapi.json: {reason}; the route table stays as it was (1 learned route)"
        );
        assert!(logged(&filter, &line) >= 1, "{line}\n{:#?}", filter.logs());
        assert_eq!(route_of(&filter, STATS), STATS, "after {reason}");
    }
}

#[test]
fn the_document_is_fetched_again_every_interval_and_a_new_one_replaces_the_table() {
    let filter = filter(r#"{"health":{"interval_seconds":0},"openapi":{"interval_seconds":30}}"#);
    fetch(&filter, document(Mode::Standard));
    filter.advance_seconds(29.0);
    no_fetch(&filter);
    filter.advance_seconds(1.0);
    fetch(&filter, document(Mode::Extended));
    assert_eq!(route_of(&filter, "/api/admin/users/u-1"), USER);
    assert_eq!(route_of(&filter, STATS), STATS);
    assert_eq!(
        logged(&filter, "learned 2 routes (7 paths: 5 configured, 0 skipped): /api/admin/stats /api/admin/users/{user_id}"),
        1
    );

    // The same document again: nothing to say. A document without a route: it is gone.
    filter.advance_seconds(30.0);
    fetch(&filter, document(Mode::Extended));
    assert_eq!(logged(&filter, "learned"), 2, "{:#?}", filter.logs());
    filter.advance_seconds(30.0);
    fetch(&filter, document(Mode::Standard));
    assert_eq!(route_of(&filter, "/api/admin/users/u-1"), "unmatched");
    assert_eq!(logged(&filter, "learned"), 3);
}

#[test]
fn a_fetch_without_an_answer_is_tried_again_within_seconds() {
    let filter = filter(NO_POLLING);
    fetch(&filter, None);
    filter.advance_seconds(4.0);
    no_fetch(&filter);
    filter.advance_seconds(1.0);
    fetch(&filter, answer("503", Vec::new()));
    filter.advance_seconds(5.0);
    fetch(&filter, document(Mode::Standard));
    assert_eq!(route_of(&filter, STATS), STATS);
    // A refused document waits for the next interval.
    filter.advance_seconds(60.0);
    fetch(&filter, document(Mode::Broken));
    filter.advance_seconds(30.0);
    no_fetch(&filter);
}

#[test]
fn with_no_interval_it_is_fetched_until_one_document_is_learned() {
    let filter = filter(r#"{"health":{"interval_seconds":0},"openapi":{"interval_seconds":0}}"#);
    fetch(&filter, None);
    filter.advance_seconds(5.0);
    fetch(&filter, document(Mode::Standard));
    filter.advance_seconds(86_400.0);
    no_fetch(&filter);
    assert_eq!(route_of(&filter, STATS), STATS);
}

#[test]
fn path_and_bounds_are_configurable_and_it_can_be_turned_off() {
    let filter = filter(
        r#"{"health":{"interval_seconds":0},"openapi":{"path":"/docs/openapi.json","max_paths":5}}"#,
    );
    fetch_at(&filter, "/docs/openapi.json", document(Mode::Standard));
    assert!(logged(&filter, "refused: it has more than 5 paths") == 1);
    assert_eq!(route_of(&filter, STATS), "unmatched");

    let off = self::filter(r#"{"health":{"interval_seconds":0},"openapi":{"enabled":false}}"#);
    no_fetch(&off);
    assert_eq!(route_of(&off, STATS), "unmatched");
}

#[test]
fn configured_routes_win_and_keep_their_meaning() {
    let filter = filter(
        r#"{"health":{"interval_seconds":0},"routes":["/api/prompt-templates","/api/prompt-templates/{id}","/api/prompt-templates/{id}/ensure-version","/api/prompt-templates/{id}/run"],
            "probe":{"method":"POST","route":"/api/prompt-templates/{id}/ensure-version"},
            "run":{"method":"POST","route":"/api/prompt-templates/{id}/run"}}"#,
    );
    fetch(&filter, document(Mode::Standard));
    assert!(
        logged(
            &filter,
            "learned 2 routes (6 paths: 4 configured, 0 skipped): /"
        ) == 1,
        "{:#?}",
        filter.logs()
    );
    assert_eq!(
        route_of(&filter, "/api/prompt-templates/t-1"),
        "/api/prompt-templates/{id}"
    );
    assert_eq!(route_of(&filter, "/healthz"), "/healthz");
    filter
        .exchange(
            &Request::post(
                "/api/prompt-templates/t-1/run",
                r#"{"provider":"openai","model_id":"gpt-4o"}"#,
            )
            .respond(r#"{"system_fingerprint":"fp_1"}"#),
        )
        .unwrap();
    let se = [(label::SERVICE, "prompter-api"), (label::ENV, "dev")];
    assert_eq!(
        filter.series().get(Metric::ResultsInsert.name(), &se),
        Some(1.0)
    );
}

/// A GET through another instance (another worker's VM).
fn get_on(vm: &mut FilterInstance, path: &str) {
    let id = vm.create_stream().unwrap();
    let headers = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":path".to_vec(), path.as_bytes().to_vec()),
        (b":authority".to_vec(), b"prompter-api".to_vec()),
    ];
    vm.on_request_headers(id, headers, true).unwrap();
    vm.on_response_headers(id, vec![(b":status".to_vec(), b"200".to_vec())], true)
        .unwrap();
    vm.finish_stream(id).unwrap();
}

#[test]
fn one_worker_fetches_and_every_worker_uses_what_it_learned() {
    let filter = filter(NO_POLLING);
    let setup = PluginSetup {
        plugin_config: NO_POLLING.as_bytes().to_vec(),
        clusters: vec!["prompter_api".into()],
        ..PluginSetup::default()
    };
    let mut other =
        FilterInstance::new(&testing::default_module(), filter.shared.clone(), setup).unwrap();
    fetch(&filter, document(Mode::Standard));
    // The other worker ticks too: the lease is taken, it does not fetch, it takes the table up.
    other.tick().unwrap();
    assert_eq!(other.take_http_calls(), Vec::new());
    get_on(&mut other, STATS);
    let labels = [
        (label::SERVICE, "prompter-api"),
        (label::ENV, "dev"),
        (label::METHOD, "GET"),
        (label::ROUTE, STATS),
        (label::STATUS, "200"),
    ];
    assert_eq!(
        filter.series().get(Metric::RequestsTotal.name(), &labels),
        Some(1.0)
    );

    // A newer table from the first worker reaches the other one on its next tick.
    filter.advance_seconds(60.0);
    other.tick().unwrap();
    let calls = other.take_http_calls();
    assert_eq!(calls.len(), 1, "the other worker won the lease this time");
    other
        .on_http_call_response(calls[0].token, document(Mode::Extended))
        .unwrap();
    filter.tick().unwrap();
    assert_eq!(filter.take_http_calls(), Vec::new());
    assert_eq!(route_of(&filter, "/api/admin/users/u-7"), USER);
}

#[test]
fn an_api_without_a_document_is_logged_once_and_again_when_that_changes() {
    let filter = filter(NO_POLLING);
    let warnings = || logged(&filter, "OpenAPI document /openapi.json: answered");
    for _ in 0..4 {
        fetch(
            &filter,
            answer("404", b"{\"detail\":\"Not Found\"}".to_vec()),
        );
        filter.advance_seconds(60.0);
    }
    assert_eq!(warnings(), 1, "the same failure, once: {:?}", filter.logs());
    fetch(&filter, answer("500", Vec::new()));
    assert_eq!(warnings(), 2, "another failure");
    filter.advance_seconds(5.0);
    fetch(&filter, document(Mode::Standard));
    assert_eq!(route_of(&filter, STATS), STATS);
    filter.advance_seconds(60.0);
    fetch(&filter, answer("404", Vec::new()));
    assert_eq!(warnings(), 3, "failing again after a success");
}
