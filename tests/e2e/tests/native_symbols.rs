//! The native module (`scripts/build-native`) against the installed Envoy's ABI: every hook
//! Envoy resolves for an HTTP filter module is exported by the module, and every Envoy
//! callback the module imports is one Envoy exports. Envoy opens a module with `RTLD_LAZY`,
//! so a missing callback would only show as a crash on first use; a missing hook makes Envoy
//! refuse the module.

use std::collections::BTreeSet;

use object::{Object, ObjectSymbol};
use prompter_e2e::envoy::{envoy_binary, native_module};

const HOOK: &[u8] = b"envoy_dynamic_module_on_";
const CALLBACK: &str = "envoy_dynamic_module_callback_";

/// The hooks an HTTP filter module must have: the names Envoy's binary holds (it resolves
/// them by name with `dlsym`) of the program's and the HTTP filter's hooks.
fn hooks_envoy_resolves(envoy: &[u8]) -> BTreeSet<String> {
    let mut hooks = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = find(&envoy[at..], HOOK) {
        let start = at + found;
        let end = envoy[start..]
            .iter()
            .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_'))
            .map_or(envoy.len(), |n| start + n);
        // A symbol name Envoy passes to dlsym is a whole C string.
        if envoy.get(end) == Some(&0) {
            let name = String::from_utf8_lossy(&envoy[start..end]).into_owned();
            let rest = &name[HOOK.len()..];
            if rest == "program_init" || rest.starts_with("http_filter_") {
                hooks.insert(name);
            }
        }
        at = end.max(start + 1);
    }
    hooks
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// (defined, undefined) dynamic symbols of an ELF file.
fn dynamic_symbols(file: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    let elf = object::File::parse(file).expect("an ELF file");
    let mut defined = BTreeSet::new();
    let mut undefined = BTreeSet::new();
    for symbol in elf.dynamic_symbols() {
        let Ok(name) = symbol.name() else { continue };
        if symbol.is_undefined() {
            undefined.insert(name.to_string());
        } else {
            defined.insert(name.to_string());
        }
    }
    (defined, undefined)
}

#[test]
fn the_module_exports_every_hook_envoy_resolves_and_imports_only_callbacks_envoy_exports() {
    let envoy = std::fs::read(envoy_binary()).unwrap();
    let module = std::fs::read(native_module()).unwrap();
    let hooks = hooks_envoy_resolves(&envoy);
    assert!(
        hooks.contains("envoy_dynamic_module_on_http_filter_request_headers") && hooks.len() > 20,
        "Envoy's hook names not found in its binary: {hooks:?}"
    );
    let (envoy_exports, _) = dynamic_symbols(&envoy);
    let (module_exports, module_imports) = dynamic_symbols(&module);

    let missing_hooks: Vec<_> = hooks.difference(&module_exports).collect();
    assert!(
        missing_hooks.is_empty(),
        "hooks Envoy resolves that the module does not export: {missing_hooks:?}"
    );
    let callbacks: BTreeSet<_> = module_imports
        .iter()
        .filter(|name| name.starts_with(CALLBACK))
        .cloned()
        .collect();
    assert!(
        callbacks.contains("envoy_dynamic_module_callback_http_get_header"),
        "the module imports no Envoy callback: {module_imports:?}"
    );
    let unknown: Vec<_> = callbacks.difference(&envoy_exports).collect();
    assert!(
        unknown.is_empty(),
        "callbacks the module imports that Envoy does not export: {unknown:?}"
    );
    // Nothing else Envoy-shaped is left unresolved.
    let odd: Vec<_> = module_imports
        .iter()
        .filter(|name| name.starts_with("envoy_") && !name.starts_with(CALLBACK))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
}
