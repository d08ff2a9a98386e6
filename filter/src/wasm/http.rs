//! The HTTP context: feeds one request's headers, status and body chunks to an
//! [`Exchange`] and records its events when Envoy logs the stream. It never pauses or
//! changes the traffic.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::host;
use super::root::Shared;
use crate::exchange::Exchange;

pub struct RequestMetrics {
    shared: Rc<Shared>,
    exchange: Option<Exchange>,
}

impl RequestMetrics {
    pub fn new(shared: Rc<Shared>) -> Self {
        RequestMetrics {
            shared,
            exchange: None,
        }
    }

    /// The time, when the exchange's declared metrics want to know when the response came
    /// (a host call, so only then).
    fn response_clock(&self) -> Option<u64> {
        self.exchange
            .as_ref()
            .is_some_and(Exchange::wants_response_time)
            .then(host::now_nanos)
    }
}

impl Context for RequestMetrics {}

impl HttpContext for RequestMetrics {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // Two header reads: cheaper in Envoy than one read of the whole map, which Envoy
        // serializes header by header (measured: BENCHMARKS.md, "What was tried").
        let method = host::header(MapType::HttpRequestHeaders, ":method");
        let path = host::header(MapType::HttpRequestHeaders, ":path");
        let config = &self.shared.config;
        let mut exchange = Exchange::start_with(
            config,
            &self.shared.learned.borrow(),
            method.as_deref(),
            path.as_deref(),
            host::now_nanos(),
        );
        if exchange.wants_request_headers() {
            for (index, name) in config.declared.headers.iter().enumerate() {
                let value = self.get_http_request_header_bytes(name);
                exchange.request_header(index, value.as_deref());
            }
        }
        self.exchange = Some(exchange);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if body_size > 0
            && self
                .exchange
                .as_ref()
                .is_some_and(Exchange::wants_request_body)
        {
            let chunk = self.get_http_request_body(0, body_size).unwrap_or_default();
            if let Some(exchange) = &mut self.exchange {
                exchange.request_body(&self.shared.config, &chunk);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let status = host::header(MapType::HttpResponseHeaders, ":status");
        // Each header read is a host call; most routes have no use for this one.
        let content_type = if self
            .exchange
            .as_ref()
            .is_some_and(Exchange::reads_content_type)
        {
            host::header(MapType::HttpResponseHeaders, "content-type")
        } else {
            None
        };
        let now = self.response_clock();
        if let Some(exchange) = &mut self.exchange {
            exchange.response_headers(status.as_deref(), content_type.as_deref());
            if let Some(now) = now {
                exchange.response_time(now, 0);
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let now = self.response_clock();
        if let Some(exchange) = &mut self.exchange {
            if let Some(now) = now {
                exchange.response_time(now, body_size);
            }
            // Only what the exchange reads is copied into the VM.
            exchange.response_chunk(&self.shared.config, body_size, |range| {
                proxy_wasm::hostcalls::get_buffer(
                    proxy_wasm::types::BufferType::HttpResponseBody,
                    range.start,
                    range.len(),
                )
                .ok()
                .flatten()
            });
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // A stream that ended before response headers still has a code in Envoy's properties
        // (a host call, so only asked for when the headers gave none).
        let code = if self.exchange.as_ref().is_some_and(Exchange::has_status) {
            None
        } else {
            self.get_property(vec!["response", "code"])
                .and_then(|raw| <[u8; 8]>::try_from(raw.as_slice()).ok())
                .map(u64::from_le_bytes)
                .and_then(|c| u16::try_from(c).ok())
        };
        let now = host::now_nanos();
        let shared = &self.shared;
        // Used where it is: moving an exchange (a few KB of scanner state) out of the
        // context is a copy the size of it.
        let exchange = self
            .exchange
            .get_or_insert_with(|| Exchange::start(&shared.config, None, None, now));
        exchange.status_if_unknown(code);
        let mut models = shared.models.borrow_mut();
        exchange.finish(&shared.config, &mut models, now, &mut |event| {
            shared.record(event)
        });
    }
}
