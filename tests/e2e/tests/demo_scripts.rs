//! The pieces of `scripts/demo-envoy` a new user meets first: it refuses ports already in
//! use, naming them, before it builds or starts anything; and the series it prints count the
//! traffic it sent, read once the filter has flushed them, not the zeros of the moment after.

use std::net::TcpListener;
use std::process::{Command, Output};

use prompter_e2e::client::{self, Framing};
use prompter_e2e::envoy::{Envoy, EnvoyOptions};
use prompter_e2e::{free_port, repo_root, scrape};
use prompter_filter::catalog::Metric;

fn script(name: &str, args: &[String]) -> Output {
    Command::new(repo_root().join("scripts").join(name))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn busy_ports_are_refused_by_name_before_anything_starts() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let (free, free_too) = (free_port(), free_port());

    let checked = script(
        "check-ports",
        &[
            format!("{busy}=the sample API (--api-port)"),
            format!("{free}=Envoy's listener (--listen-port)"),
        ],
    );
    let said = text(&checked.stderr);
    assert_eq!(checked.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{busy}: the sample API (--api-port)")),
        "{said}"
    );
    assert!(!said.contains(&free.to_string()), "{said}");

    let all_free = script(
        "check-ports",
        &[format!("{free}=a"), format!("{free_too}=b")],
    );
    assert!(all_free.status.success(), "{}", text(&all_free.stderr));
    let not_a_port = script("check-ports", &["80000=a".to_string()]);
    assert_eq!(not_a_port.status.code(), Some(2));

    // The demo itself stops there, before installing or building anything.
    let demo = script(
        "demo-envoy",
        &[
            "--api-port".into(),
            busy.to_string(),
            "--listen-port".into(),
            free.to_string(),
            "--admin-port".into(),
            free_too.to_string(),
        ],
    );
    let said = text(&demo.stderr);
    assert_eq!(demo.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("{busy}: the sample API")), "{said}");
    assert!(text(&demo.stdout).is_empty(), "{}", text(&demo.stdout));
    drop(taken);
}

/// Requests sent, then the script run at once: it waits for the flush and prints every
/// request counted (the sum of `starlette_requests_total`), no series at 0.
#[test]
fn the_demo_prints_the_series_of_its_traffic_not_zeros() {
    let sample = prompter_sample_api::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(
        sample.addr,
        r#"{"health": {"interval_seconds": 0}}"#,
    ));
    let sent = 5;
    for _ in 0..sent {
        client::send(
            envoy.listener,
            "GET",
            "/api/prompt-templates",
            None,
            Framing::Whole,
        );
    }
    let printed = script(
        "wait-for-stats",
        &[format!("http://{}", envoy.admin), sent.to_string()],
    );
    let out = text(&printed.stdout);
    assert!(printed.status.success(), "{out}{}", text(&printed.stderr));
    let requests = scrape::parse(&out);
    let counts: Vec<f64> = requests
        .named(Metric::RequestsTotal.name())
        .map(|(_, v)| v)
        .collect();
    assert_eq!(counts.iter().sum::<f64>(), f64::from(sent), "{out}");
    assert!(
        !out.lines().any(|l| l.ends_with(" 0")),
        "a series at 0:\n{out}"
    );
}
