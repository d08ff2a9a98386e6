//! `SseFieldScanner`: any chunking of an event stream gives the same fields, event count and
//! `[DONE]` as the whole stream, and those are what the events' JSON says (first non-empty
//! value of each field over the dispatched events). Streams mix LF, CR and CRLF line ends,
//! comments, other fields, JSON spread over several `data` lines, non-JSON data and a last
//! event left open.

use prompter_filter::sse::SseFieldScanner;
use proptest::prelude::*;

use super::config;
use super::gen::{
    cuts, fields, json_object, oracle, split, write_members, Char, Json, Seen, Spacing, LINE_SPACE,
};

/// What one event's data is.
#[derive(Debug, Clone)]
enum Data {
    /// A JSON object, one member per `data` line (joined with LF, still one document).
    Object(Vec<(Vec<Char>, Json)>),
    Done,
    NotJson,
}

#[derive(Debug, Clone)]
struct Event {
    data: Data,
    /// `data:` or `data: ` (one space after the colon is not part of the value).
    spaced: bool,
    /// A comment and an `event:`/`id:` line among the data lines.
    noise: bool,
}

fn event() -> impl Strategy<Value = Event> {
    let data = prop_oneof![
        6 => json_object().prop_map(Data::Object),
        1 => Just(Data::Done),
        1 => Just(Data::NotJson),
    ];
    (data, any::<bool>(), any::<bool>()).prop_map(|(data, spaced, noise)| Event {
        data,
        spaced,
        noise,
    })
}

/// The stream's text and what each dispatched event's data is.
fn write_stream(
    events: &[Event],
    end: &str,
    bom: bool,
    last_open: bool,
    seed: u64,
) -> (String, Vec<String>) {
    let mut out = String::from(if bom { "\u{FEFF}" } else { "" });
    let mut dispatched = Vec::new();
    let mut space = Spacing::new(seed, LINE_SPACE);
    for (i, event) in events.iter().enumerate() {
        let lines: Vec<String> = match &event.data {
            Data::Object(members) => {
                let mut text = String::new();
                write_members(&mut text, members, &mut space, |out| out.push_str(",\n"));
                text.split('\n').map(str::to_string).collect()
            }
            Data::Done => vec!["[DONE]".into()],
            Data::NotJson => vec!["not json {".into()],
        };
        if event.noise {
            out.push_str(&format!(": keep-alive{end}event: chunk{end}"));
        }
        for (n, line) in lines.iter().enumerate() {
            let prefix = if event.spaced { "data: " } else { "data:" };
            out.push_str(&format!("{prefix}{line}{end}"));
            if event.noise && n == 0 {
                out.push_str(&format!("id: {i}{end}"));
            }
        }
        let open = last_open && i + 1 == events.len();
        if !open {
            out.push_str(end);
            dispatched.push(lines.join("\n"));
        }
    }
    (out, dispatched)
}

/// The fields, events and `[DONE]` the events' data must give.
fn expected(dispatched: &[String]) -> (Vec<Seen>, u32, bool) {
    let mut first = vec![Seen::Absent; fields().len()];
    for data in dispatched {
        let seen = oracle(data.as_bytes()).unwrap_or_else(|| vec![Seen::Absent; first.len()]);
        for (slot, value) in first.iter_mut().zip(seen) {
            if *slot == Seen::Absent && value.is_kept_from_an_event() {
                *slot = value;
            }
        }
    }
    let done = dispatched.iter().any(|d| d == "[DONE]");
    (first, dispatched.len() as u32, done)
}

fn scan<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Seen>, u32, bool) {
    let fields = fields();
    let mut scanner = SseFieldScanner::new();
    for chunk in chunks {
        scanner.feed(&fields, chunk);
    }
    let seen = (0..fields.len())
        .map(|i| Seen::of(scanner.field(i)))
        .collect();
    (seen, scanner.events(), scanner.is_done())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_chunking_of_an_event_stream_gives_the_same_fields(
        events in prop::collection::vec(event(), 0..6),
        end in prop::sample::select(vec!["\n", "\r", "\r\n"]),
        bom in any::<bool>(),
        last_open in any::<bool>(),
        seed in any::<u64>(),
        cuts in cuts(),
    ) {
        let (stream, dispatched) = write_stream(&events, end, bom, last_open, seed);
        let bytes = stream.as_bytes();
        let whole = scan([bytes]);
        prop_assert_eq!(&whole, &expected(&dispatched), "{:?}", stream);
        prop_assert_eq!(&scan(split(bytes, &cuts)), &whole, "{:?}", stream);
        prop_assert_eq!(&scan(bytes.chunks(1)), &whole, "byte by byte: {:?}", stream);
    }
}
