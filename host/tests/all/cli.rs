//! The command line as a user meets it: one vocabulary across commands, the module found
//! from wherever the command runs, a banner that says whether the filter runs, and files
//! written only when whole.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use prompter_host::testing;

fn prompter_host(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prompter-host"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An empty directory of its own: no `target/wasm` under it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prompter-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `proxy` on free loopback ports started from `cwd`, killed when dropped.
struct ProxyProcess {
    child: Child,
    /// The banner, up to its `Ctrl-C` line.
    banner: String,
}

impl ProxyProcess {
    fn start(cwd: &Path, extra: &[&str]) -> Result<ProxyProcess, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prompter-host"))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
            ])
            .args(extra)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut banner = String::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C") {
                return Ok(ProxyProcess { child, banner });
            }
        }
        let output = child.wait_with_output().unwrap();
        Err(stderr(&output))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_proxy_finds_the_module_from_anywhere_and_says_the_filter_runs() {
    let shipped = testing::default_wasm();
    let elsewhere = scratch("anywhere");
    let proxy = ProxyProcess::start(&elsewhere, &[]).expect("starts");
    assert!(
        proxy.banner.contains("the filter (")
            && proxy.banner.contains("runs on every request")
            && proxy.banner.contains("prompter_filter.wasm"),
        "{}",
        proxy.banner
    );
    drop(proxy);
    assert!(shipped.is_file());
}

#[test]
fn the_proxy_refuses_a_missing_module_unless_asked_to_pass_traffic_unmeasured() {
    let dir = scratch("missing");
    let missing = dir.join("nothing.wasm");
    let missing = missing.to_str().unwrap();
    let refused = ProxyProcess::start(&dir, &["--wasm", missing])
        .err()
        .unwrap();
    assert!(refused.contains("nothing.wasm"), "{refused}");

    let proxy = ProxyProcess::start(&dir, &["--wasm", missing, "--unmeasured"]).unwrap();
    assert!(
        proxy.banner.contains("the filter is NOT running")
            && !proxy.banner.contains("runs on every"),
        "{}",
        proxy.banner
    );
}

#[test]
fn the_proxy_refuses_clusters_it_does_not_have_as_envoy_config_does() {
    let dir = scratch("clusters");
    for config in [
        r#"{"health": {"cluster": "elsewhere"}}"#,
        r#"{"openapi": {"cluster": "elsewhere"}}"#,
    ] {
        let file = dir.join("config.json");
        std::fs::write(&file, config).unwrap();
        let file = file.to_str().unwrap();
        let proxy = ProxyProcess::start(&dir, &["--plugin-config", file])
            .err()
            .unwrap();
        let envoy = stderr(&prompter_host(
            &["envoy-config", "--plugin-config", file],
            &dir,
        ));
        assert!(
            proxy.contains("is `elsewhere`, but the only cluster is `prompter_api`"),
            "{proxy}"
        );
        assert_eq!(
            proxy.trim().strip_prefix("prompter-host proxy: "),
            envoy.trim().strip_prefix("prompter-host envoy-config: "),
            "one message"
        );
    }
}

#[test]
fn every_command_takes_the_same_flags_and_refuses_an_empty_env_key() {
    let dir = scratch("flags");
    let config = dir.join("config.json");
    std::fs::write(&config, r#"{"service": "flagged"}"#).unwrap();
    let config = config.to_str().unwrap();
    // `--plugin-config` everywhere; `--config`, the proxy's old name, still works.
    for flag in ["--plugin-config", "--config"] {
        let proxy = ProxyProcess::start(&dir, &[flag, config]).expect(flag);
        assert!(proxy.banner.contains("runs on every request"));
    }
    let replay = prompter_host(
        &["replay", "-", "--plugin-config", config, "--env", "=v"],
        &dir,
    );
    let proxy = ProxyProcess::start(&dir, &["--env", "=v"]).err().unwrap();
    for refused in [stderr(&replay), proxy] {
        assert!(refused.contains("`=v` is not KEY=VALUE"), "{refused}");
    }
    // One timeout: the generated route's and the proxy's default.
    let help = String::from_utf8(prompter_host(&["proxy", "--help"], &dir).stdout).unwrap();
    let yaml = String::from_utf8(prompter_host(&["envoy-config"], &dir).stdout).unwrap();
    let seconds = prompter_host::envoy_config::UPSTREAM_TIMEOUT.as_secs();
    assert!(help.contains(&format!("[default: {seconds}]")), "{help}");
    assert!(yaml.contains(&format!("timeout: {seconds}s")), "{yaml}");
}

#[test]
fn envoy_config_writes_its_output_only_when_valid_and_takes_the_proxys_upstream_form() {
    let dir = scratch("output");
    let out = dir.join("envoy.yaml");
    let out_arg = out.to_str().unwrap();
    let bad = prompter_host(
        &[
            "envoy-config",
            "--listen",
            "localhost:10000",
            "--output",
            out_arg,
        ],
        &dir,
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("IP address"), "{}", stderr(&bad));
    assert!(!out.exists(), "no file left behind by a refused bootstrap");

    let printed = prompter_host(
        &["envoy-config", "--upstream", "http://api.internal:8000"],
        &dir,
    );
    assert!(printed.status.success(), "{}", stderr(&printed));
    let written = prompter_host(
        &[
            "envoy-config",
            "--upstream",
            "api.internal:8000",
            "--output",
            out_arg,
        ],
        &dir,
    );
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(written.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), printed.stdout);
}

#[test]
fn replay_reads_a_recording_from_standard_input() {
    let recording = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exchanges.jsonl");
    let dir = scratch("stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prompter-host"))
        .args(["replay", "-"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&recording).unwrap())
        .unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    let from_file = prompter_host(&["replay", recording.to_str().unwrap()], &dir);
    let series = |o: &Output| testing::series::parse(&String::from_utf8_lossy(&o.stdout));
    assert!(!series(&from_stdin).0.is_empty());
    assert!(
        series(&from_stdin) == series(&from_file),
        "the same metrics"
    );
}
