//! Exposure: nothing listens beyond loopback unless told to. The proxy's and the exporter's
//! default addresses, the addresses `envoy-config` writes by default (Envoy's admin interface
//! can stop Envoy and has no authentication), and the shipped `envoy/envoy.yaml`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

fn prompter_host(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_prompter-host"))
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The `[default: ...]` clap prints for `--flag` in a `--help` text.
fn default_of(help: &str, flag: &str) -> SocketAddr {
    let at = help
        .find(&format!("{flag} <"))
        .unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
    let rest = &help[at..];
    let start = rest.find("[default: ").expect("a default") + "[default: ".len();
    let value = &rest[start..start + rest[start..].find(']').unwrap()];
    value
        .parse()
        .unwrap_or_else(|e| panic!("{flag} default {value:?}: {e}"))
}

/// Every `socket_address: { address: A, port_value: P }` of an Envoy bootstrap.
fn socket_addresses(yaml: &str) -> Vec<SocketAddr> {
    yaml.lines()
        .filter_map(|line| {
            let inner = line.split("socket_address: {").nth(1)?;
            let address = inner.split("address:").nth(1)?.split(',').next()?.trim();
            let port = inner
                .split("port_value:")
                .nth(1)?
                .trim_end_matches('}')
                .trim();
            Some(format!("{address}:{port}").parse().unwrap())
        })
        .collect()
}

#[test]
fn the_proxy_and_its_exporter_listen_on_loopback_by_default() {
    let help = prompter_host(&["proxy", "--help"]);
    for flag in ["--listen", "--metrics"] {
        let addr = default_of(&help, flag);
        assert!(addr.ip().is_loopback(), "{flag} defaults to {addr}");
    }
}

#[test]
fn envoy_config_and_the_shipped_bootstrap_bind_loopback_by_default() {
    let help = prompter_host(&["envoy-config", "--help"]);
    for flag in ["--listen", "--admin"] {
        let addr = default_of(&help, flag);
        assert!(addr.ip().is_loopback(), "{flag} defaults to {addr}");
    }
    let generated = prompter_host(&["envoy-config"]);
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/envoy.yaml"))
            .unwrap();
    for (what, yaml) in [("envoy-config", generated), ("envoy/envoy.yaml", shipped)] {
        // Admin, listener and upstream: three addresses, all loopback.
        let addresses = socket_addresses(&yaml);
        assert_eq!(addresses.len(), 3, "{what}:\n{yaml}");
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{what} binds {addresses:?}"
        );
        let admin = yaml.split("admin:").nth(1).expect("an admin block");
        assert!(
            socket_addresses(admin)[0].ip().is_loopback(),
            "{what}: the admin interface is not on loopback"
        );
    }
}
