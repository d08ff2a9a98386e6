//! What the request path reads from the host, without the SDK's conversions: the clock as
//! nanoseconds, and header values as text. With the allocator, the glue's only `unsafe`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

#[link(wasm_import_module = "env")]
extern "C" {
    /// The proxy-wasm 0.2 ABI call; the status is 0 (`Ok`) when the time was written.
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
}

/// Nanoseconds since the Unix epoch (0 if the host refused, which makes a duration 0).
///
/// The SDK's `get_current_time` wraps them in a `SystemTime`, which the filter turned back
/// into nanoseconds: a checked addition, a checked subtraction and a 128-bit multiplication
/// per read, twice per request.
pub fn now_nanos() -> u64 {
    let mut nanos = 0;
    // SAFETY: the host writes one u64 through the pointer, which is a live local's.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == 0 {
        nanos
    } else {
        0
    }
}

/// A header's value as text. The SDK's `String` getters panic on bytes that are not UTF-8;
/// odd bytes only ever lead to `other`/`unmatched`/`0` labels, so a lossy copy is enough.
/// Header values are ASCII in practice: checked a word at a time, they keep their buffer
/// without the UTF-8 validation (which took more instructions than the route match).
pub fn header(map: MapType, name: &str) -> Option<String> {
    let bytes = hostcalls::get_map_value_bytes(map, name).ok()??;
    if crate::bytes::is_ascii(&bytes) {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { String::from_utf8_unchecked(bytes) });
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
