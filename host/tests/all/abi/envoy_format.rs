//! Header maps cross the ABI in Envoy's pairs format (proxy-wasm-cpp-host's `PairsUtil`): a
//! u32 count, a u32 size for every name and value, then each name and value followed by NUL.
//! Checked byte for byte, both ways, with a WAT filter and golden bytes.

use prompter_host::testing::Request;

use super::Wat;

#[test]
fn header_map_pairs_reach_the_guest_in_envoys_format() {
    // The filter asks for the request headers and logs the returned buffer as it is.
    let filter = Wat::on_request_headers(
        "(drop (call $get_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
         (drop (call $log (i32.const 2) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
         (i32.const 0)",
    )
    .harness();
    let mut request = Request::get("/healthz");
    request.headers.push((b"x-empty".to_vec(), Vec::new()));
    filter.exchange(&request).unwrap();
    let golden: &[u8] = b"\x04\0\0\0\
        \x07\0\0\0\x03\0\0\0\
        \x05\0\0\0\x08\0\0\0\
        \x0a\0\0\0\x0c\0\0\0\
        \x07\0\0\0\x00\0\0\0\
        :method\0GET\0:path\0/healthz\0:authority\0prompter-api\0x-empty\0\0";
    assert_eq!(filter.logs().last().map(String::as_bytes), Some(golden));
}

#[test]
fn header_map_pairs_from_the_guest_are_read_in_envoys_format() {
    let filter = Wat::on_request_headers(
        "(drop (call $set_pairs (i32.const 0) (i32.const 256) (i32.const 36))) (i32.const 0)",
    )
    .with(
        r#"(data (i32.const 256) "\02\00\00\00\03\00\00\00\01\00\00\00\05\00\00\00\03\00\00\00x-a\001\00:path\00/v2\00")"#,
    )
    .harness();
    let mut vm = filter.instance();
    let id = vm.create_stream().unwrap();
    vm.on_request_headers(id, vec![(b":path".to_vec(), b"/".to_vec())], true)
        .unwrap();
    assert_eq!(
        vm.stream(id).unwrap().request_headers,
        [
            (b"x-a".to_vec(), b"1".to_vec()),
            (b":path".to_vec(), b"/v2".to_vec())
        ]
    );
}
