//! The host proxy as a process of its own, so that its resident memory is its own: the
//! `e2e-host-proxy` binary of this package (debug, as the tests), or the binary
//! `$PROMPTER_SOAK_HOST` names (`scripts/soak` passes the release `prompter-host`). Both take
//! `proxy --listen --metrics --upstream --workers` as `prompter-host` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{client, free_port};

pub struct HostProcess {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub binary: PathBuf,
    child: Child,
}

impl HostProcess {
    /// Starts `binary` in front of `upstream` and waits until it serves.
    pub fn start(binary: PathBuf, upstream: SocketAddr, workers: usize) -> HostProcess {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new(&binary)
            .arg("proxy")
            .args(["--listen", &listen.to_string()])
            .args(["--metrics", &metrics.to_string()])
            .args(["--upstream", &format!("http://{upstream}")])
            .args(["--workers", &workers.to_string()])
            .args(["--wasm", &crate::envoy::wasm_module().display().to_string()])
            .args([
                "--config",
                &crate::host::temp_file(
                    "soak-plugin.json",
                    br#"{"health":{"interval_seconds":0}}"#,
                )
                .display()
                .to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut process = HostProcess {
            listen,
            metrics,
            binary,
            child,
        };
        let start = Instant::now();
        while !client::try_get(metrics, prompter_host::exporter::METRICS_PATH)
            .is_ok_and(|r| r.status == 200)
            || std::net::TcpStream::connect(listen).is_err()
        {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("{} exited: {status}", process.binary.display());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the host proxy did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
