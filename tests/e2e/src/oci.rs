//! The OCI image `scripts/publish-oci` builds, read back the way Istio's agent reads a Wasm
//! image it pulled (`pkg/wasm/imagefetcher.go`): the manifest digest is what a WasmPlugin's
//! `sha256` is checked against; the "compat" variant's last layer is a gzipped tar holding
//! `plugin.wasm`. Also a throwaway local registry (Debian's `docker-registry`) to push to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::{free_port, repo_root};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Runs `scripts/publish-oci` with `args`; returns its stdout.
pub fn publish(args: &[&str]) -> String {
    let output = Command::new(repo_root().join("scripts/publish-oci"))
        .args(args)
        .output()
        .expect("scripts/publish-oci runs (python3)");
    assert!(
        output.status.success(),
        "scripts/publish-oci {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `scripts/publish-oci --layout <dir>`: the manifest digest (hex) it printed.
pub fn build_layout(dir: &Path) -> String {
    let out = publish(&["--layout", dir.to_str().unwrap()]);
    let digest = out.trim().to_string();
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "not a digest: {out:?}"
    );
    digest
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    // `sha256sum` keeps the test crate free of a hashing dependency.
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A blob of the layout, checked against its digest.
pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256_hex(&bytes), hex, "blob content matches its digest");
    bytes
}

/// The layout's only manifest: (digest hex, parsed manifest).
pub fn manifest(layout: &Path) -> (String, Json) {
    let index: Json =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["mediaType"], MANIFEST_TYPE);
    let digest = manifests[0]["digest"].as_str().unwrap();
    let manifest = serde_json::from_slice(&blob(layout, digest)).unwrap();
    (digest.trim_start_matches("sha256:").to_string(), manifest)
}

/// `plugin.wasm` out of the image's last layer, as Istio extracts it; written into `out`.
pub fn extract_plugin(layout: &Path, out: &Path) -> PathBuf {
    let (_, manifest) = manifest(layout);
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(layer["mediaType"], LAYER_TYPE, "Istio's compat variant");
    let tgz = out.join("layer.tar.gz");
    std::fs::write(&tgz, blob(layout, layer["digest"].as_str().unwrap())).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(out)
        .arg("plugin.wasm")
        .status()
        .expect("tar");
    assert!(status.success(), "the layer holds plugin.wasm");
    out.join("plugin.wasm")
}

/// Debian's `docker-registry` (the CNCF distribution registry) on a loopback port, storing
/// into a temporary directory; stopped when dropped.
pub struct Registry {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Registry {
    /// `None` when `docker-registry` is not installed (`scripts/install-deps all` installs it).
    pub fn start() -> Option<Registry> {
        let binary = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let dir = std::env::temp_dir().join(format!(
            "prompter-e2e-registry-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry { addr, child, dir };
        let start = Instant::now();
        while !crate::client::try_get(addr, "/v2/").is_ok_and(|r| r.status == 200) {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "registry not ready:\n{}",
                std::fs::read_to_string(registry.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
