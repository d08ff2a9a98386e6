//! Driving the filter through a recording on a manual clock.

use crate::clock::Clock;
use crate::error::HostError;
use crate::logs::Level;
use crate::state::{HeaderMap, PluginSetup, Shared};
use crate::vm::{FilterInstance, FilterModule};

use super::{Error, Exchange};

/// The plugin configuration replay uses unless given one: the defaults, without health
/// polling (there is no upstream to poll).
pub const DEFAULT_PLUGIN_CONFIG: &str = r#"{"health":{"interval_seconds":0}}"#;

/// Where the clock starts when the recording gives no start times: 2026-01-01T00:00:00Z.
const START_NANOS: u64 = 1_767_225_600_000_000_000;

/// Http calls answered in a row before giving up on a filter that keeps dispatching them.
const MAX_CALL_ROUNDS: usize = 16;

/// Replays `exchanges` in order through one new instance of `module`; the returned state
/// holds the metrics (`shared.metrics.encode()` is what `/metrics` would serve) and the
/// filter's log lines.
pub fn replay(
    module: &FilterModule,
    setup: PluginSetup,
    exchanges: &[Exchange],
) -> Result<Shared, Error> {
    let start = exchanges.iter().find_map(|e| e.start_nanos);
    let clock = Clock::manual(start.unwrap_or(START_NANOS));
    let shared = crate::testing::shared_for(&setup.plugin_config, &setup.env, clock.clone());
    let mut vm = FilterInstance::new(module, shared.clone(), setup).map_err(Error::Start)?;
    fail_http_calls(&mut vm, &shared).map_err(Error::Start)?;
    for exchange in exchanges {
        if let Some(start) = exchange.start_nanos {
            if start > clock.now_nanos() {
                clock.set_nanos(start);
            }
        }
        one(&mut vm, &shared, &clock, exchange).map_err(|source| Error::Filter {
            origin: exchange.origin,
            source,
        })?;
    }
    Ok(shared)
}

/// One exchange through every callback, in the order Envoy calls them.
fn one(
    vm: &mut FilterInstance,
    shared: &Shared,
    clock: &Clock,
    exchange: &Exchange,
) -> Result<(), HostError> {
    let id = vm.create_stream()?;
    let mut headers: HeaderMap = vec![
        (b":method".to_vec(), exchange.method.clone().into_bytes()),
        (b":path".to_vec(), exchange.path.clone().into_bytes()),
    ];
    if let Some(authority) = &exchange.authority {
        headers.push((b":authority".to_vec(), authority.clone().into_bytes()));
    }
    headers.extend(exchange.request_headers.iter().cloned());
    vm.on_request_headers(id, headers, exchange.request_body.is_empty())?;
    if !exchange.request_body.is_empty() {
        vm.on_request_body(id, &exchange.request_body, true)?;
    }
    fail_http_calls(vm, shared)?;
    clock.advance_nanos(exchange.duration_nanos);
    if let Some(status) = exchange.status {
        let mut headers: HeaderMap = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        headers.extend(exchange.response_headers.iter().cloned());
        vm.on_response_headers(id, headers, exchange.response_body.is_empty())?;
        if !exchange.response_body.is_empty() {
            vm.on_response_body(id, &exchange.response_body, true)?;
        }
    }
    vm.finish_stream(id)?;
    fail_http_calls(vm, shared)
}

/// Answers every http call the filter dispatched as failed: replay has no upstream.
fn fail_http_calls(vm: &mut FilterInstance, shared: &Shared) -> Result<(), HostError> {
    for _ in 0..MAX_CALL_ROUNDS {
        let calls = vm.take_http_calls();
        if calls.is_empty() {
            return Ok(());
        }
        for call in calls {
            shared.logs.push(
                Level::Warn,
                format!(
                    "replay: http call to cluster `{}` answered as failed (no upstream)",
                    call.cluster
                ),
            );
            vm.on_http_call_response(call.token, None)?;
        }
    }
    Err(HostError::Unknown(format!(
        "the filter dispatched http calls {MAX_CALL_ROUNDS} times in a row"
    )))
}
