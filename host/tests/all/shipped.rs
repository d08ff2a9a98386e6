//! The module as shipped (`scripts/build-wasm`), as a file: what it carries besides code.

use prompter_host::testing::default_wasm;

/// Panic locations name dependencies' source files; with cargo's home in them, the module and
/// the OCI image's digest would differ from machine to machine for the same commit.
#[test]
fn the_shipped_module_names_no_path_of_the_machine_that_built_it() {
    let module = std::fs::read(default_wasm()).expect("the filter is built");
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cargo",
            std::env::var("HOME").expect("HOME or CARGO_HOME")
        )
    });
    let contains = |needle: &[u8]| module.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(cargo_home.as_bytes()),
        "{cargo_home} is in the module"
    );
    // The dependencies' files are still named, from the mapped home.
    assert!(contains(b"/cargo/registry/src/"));
}
