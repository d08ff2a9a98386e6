//! Envoy whose listener comes from a file (LDS through `path_config_source`), so that a test
//! can replace the listener at run time with another plugin configuration and `vm_id`: Envoy
//! then builds a new filter chain with a new VM, drains the old listener and destroys its VM,
//! as it does when a control plane pushes a new configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::envoy::{Build, Envoy, EnvoyOptions, Launch};
use crate::{client, free_port};

const LISTENERS: &str = "static_resources:\n  listeners:\n";
const CLUSTERS: &str = "  clusters:\n";
const VM_ID: &str = "vm_id: prompter_metrics";
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

pub struct LdsEnvoy {
    pub envoy: Envoy,
    lds: PathBuf,
    upstream: SocketAddr,
    build: Build,
    updates: u64,
}

impl LdsEnvoy {
    /// Starts Envoy with its listener in `dir/lds.yaml`; old listeners drain for 1 s.
    pub fn start(options: EnvoyOptions) -> LdsEnvoy {
        let listener: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let rendered = options.bootstrap(listener, admin);
        let (static_part, listener_block) = split(&rendered);
        let dir = std::env::temp_dir().join(format!(
            "prompter-e2e-lds-{}-{}",
            std::process::id(),
            listener.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let lds = dir.join("lds.yaml");
        write_atomically(&lds, &resource(&listener_block, options.build, VM_ID));
        let bootstrap = format!(
            "{static_part}node: {{ id: prompter-e2e, cluster: prompter-e2e }}\ndynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    path_config_source:\n      path: {}\n",
            lds.display()
        );
        let envoy = Envoy::start_bootstrap(
            &Launch {
                bootstrap,
                listener,
                admin,
                args: vec!["--drain-time-s".into(), "1".into()],
            },
            &options,
        );
        LdsEnvoy {
            envoy,
            lds,
            upstream: options.upstream,
            build: options.build,
            updates: 0,
        }
    }

    /// Replaces the listener by one with `plugin_config` in a VM named `vm_id` (the native
    /// module has no VM: `vm_id` is not used), and waits until Envoy has taken it (modified,
    /// warmed).
    pub fn replace_listener(&mut self, plugin_config: &str, vm_id: &str) {
        let mut options = EnvoyOptions::new(self.upstream, plugin_config);
        options.concurrency = 1;
        options.build = self.build;
        let rendered = options.bootstrap(self.envoy.listener, self.envoy.admin);
        let (_, listener_block) = split(&rendered);
        write_atomically(
            &self.lds,
            &resource(&listener_block, self.build, &format!("vm_id: {vm_id}")),
        );
        self.updates += 1;
        let start = Instant::now();
        while !(self.stat("listener_manager.listener_modified") == Some(self.updates)
            && self.stat("listener_manager.total_listeners_warming") == Some(0))
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Envoy never took the new listener:\n{}",
                self.envoy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One of Envoy's own stats, from the admin `/stats`.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let text = client::get(self.envoy.admin, &format!("/stats?filter=^{name}$")).text();
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            (k == name).then(|| v.trim().parse().ok())?
        })
    }
}

/// The generated bootstrap without its static listener, and that listener's YAML block.
fn split(rendered: &str) -> (String, String) {
    let start = rendered.find(LISTENERS).expect("a static listener") + LISTENERS.len();
    let end = start + rendered[start..].find(CLUSTERS).expect("clusters");
    let static_part = format!(
        "{}static_resources:\n{}",
        &rendered[..start - LISTENERS.len()],
        &rendered[end..]
    );
    (static_part, rendered[start..end].to_string())
}

/// The LDS file for one listener block (a list item indented by two), with `vm_id` for the
/// Wasm module (the other builds have no VM).
fn resource(listener_block: &str, build: Build, vm_id: &str) -> String {
    let listener_block = match build {
        Build::Wasm => {
            assert_eq!(listener_block.matches(VM_ID).count(), 1, "{listener_block}");
            listener_block.replace(VM_ID, vm_id)
        }
        Build::Native | Build::Bare => listener_block.to_string(),
    };
    let mut out = String::from("resources:\n");
    for (i, line) in listener_block.lines().enumerate() {
        let line = line.strip_prefix("  ").unwrap_or(line);
        if i == 0 {
            out.push_str(&format!("- \"@type\": {LISTENER_TYPE}\n "));
            out.push_str(line.strip_prefix('-').expect("a list item"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Envoy watches the file for a move onto it: write aside, then rename.
fn write_atomically(path: &PathBuf, contents: &str) {
    let aside = path.with_extension("yaml.next");
    std::fs::write(&aside, contents).unwrap();
    std::fs::rename(&aside, path).unwrap();
}
