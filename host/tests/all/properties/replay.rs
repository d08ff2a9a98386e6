//! The replay readers against arbitrary input: any bytes, in either format, read from a
//! file or from text, give an answer and never a panic; a recording that mixes good and bad
//! lines (or HAR entries) is refused with exactly its bad ones, each named by its line
//! number (entry index), and a recording of good ones gives every one of them, in order:
//! no line is skipped silently.

use prompter_host::replay::{self, Error, Format, Origin};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use super::config;

/// A JSON Lines line, or a HAR entry, as the test writes it.
#[derive(Debug, Clone)]
enum Item {
    Good(Good),
    /// Refused, whatever its details (`kind` picks how it is wrong).
    Bad(Good, u8),
    /// A good one with bytes overwritten: good or bad, but never skipped.
    Mutated(Good, Vec<(Index, u8)>),
    Blank,
    Comment,
}

/// What a good exchange carries, to check that it is read back as written.
#[derive(Debug, Clone)]
struct Good {
    method: String,
    path: String,
    status: Option<u16>,
    duration_ms: f64,
    body: String,
    base64: bool,
    start: bool,
}

fn good() -> impl Strategy<Value = Good> {
    (
        "[A-Z]{1,7}|BREW|m-1",
        "/[a-z0-9/{}%?=&._-]{0,24}",
        prop_oneof![Just(None), (100u16..1000).prop_map(Some)],
        prop_oneof![Just(0.0), 0.0..1e7f64],
        "[ -~é€]{0,20}",
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, status, duration_ms, body, base64, start)| Good {
                method,
                path,
                status,
                duration_ms,
                body,
                base64,
                start,
            },
        )
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => good().prop_map(Item::Good),
        3 => (good(), 0..12u8).prop_map(|(g, kind)| Item::Bad(g, kind)),
        2 => (good(), prop::collection::vec((any::<Index>(), 0x20u8..0x7f), 1..4))
            .prop_map(|(g, edits)| Item::Mutated(g, edits)),
        1 => Just(Item::Blank),
        1 => Just(Item::Comment),
    ]
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A good exchange as a JSON Lines object.
fn jsonl_value(g: &Good) -> Value {
    let mut line = json!({"method": g.method, "path": g.path, "duration_ms": g.duration_ms});
    if let Some(status) = g.status {
        line["status"] = json!(status);
        if g.base64 {
            line["response_body_base64"] = json!(base64(g.body.as_bytes()));
        } else {
            line["response_body"] = json!(g.body);
        }
    }
    line["request_headers"] = json!({"content-type": "application/json"});
    if g.start {
        line["start_time"] = json!("2026-01-01T00:00:00.5+01:00");
    }
    line
}

/// The same exchange made wrong in one of twelve ways.
fn jsonl_bad(g: &Good, kind: u8) -> String {
    let mut line = jsonl_value(g);
    match kind {
        0 => line["colour"] = json!("red"),
        1 => drop(line.as_object_mut().map(|o| o.remove("path"))),
        2 => line["status"] = json!(42),
        3 => line["duration_ms"] = json!(-1.5),
        4 => line["path"] = json!("http://h/x"),
        5 => line["method"] = json!("GET /x"),
        6 => line["request_body_base64"] = json!("@@@"),
        7 => line["request_headers"] = json!({":path": "/x"}),
        8 => {
            line["status"] = Value::Null;
            line["response_body"] = json!("{}");
        }
        9 => line["start_time"] = json!("yesterday"),
        10 => {
            line["request_body"] = json!("a");
            line["request_body_base64"] = json!("YQ==");
        }
        _ => {
            let text = line.to_string();
            return text[..text.len() - 1].to_string();
        }
    }
    line.to_string()
}

fn mutate(text: String, edits: &[(Index, u8)]) -> String {
    let mut bytes = text.into_bytes();
    for (at, byte) in edits {
        let at = at.index(bytes.len());
        // Only whole ASCII characters are replaced: the text stays UTF-8.
        if bytes[at].is_ascii() {
            bytes[at] = *byte;
        }
    }
    String::from_utf8(bytes).expect("ASCII replaced by ASCII")
}

/// What the reader must do with an item: read it, refuse it, either, or skip it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Read,
    Refused,
    ReadOrRefused,
    Skipped,
}

fn jsonl_line(item: &Item) -> (String, Fate) {
    match item {
        Item::Good(g) => (jsonl_value(g).to_string(), Fate::Read),
        Item::Bad(g, kind) => (jsonl_bad(g, *kind), Fate::Refused),
        Item::Mutated(g, edits) => {
            let text = mutate(jsonl_value(g).to_string(), edits);
            let trimmed = text.trim();
            let fate = if trimmed.is_empty() || trimmed.starts_with('#') {
                Fate::Skipped
            } else {
                Fate::ReadOrRefused
            };
            (text, fate)
        }
        Item::Blank => ("  ".into(), Fate::Skipped),
        Item::Comment => ("# recorded by hand".into(), Fate::Skipped),
    }
}

/// Checks the reader's answer against each item's fate; `origin(i)` names item `i`.
fn check_fates(
    outcome: Result<replay::Recording, Error>,
    fates: &[Fate],
    goods: &[Option<&Good>],
    origin: impl Fn(usize) -> Origin,
) -> Result<(), TestCaseError> {
    let counted = |f: &dyn Fn(Fate) -> bool| -> Vec<Origin> {
        (0..fates.len())
            .filter(|i| f(fates[*i]))
            .map(&origin)
            .collect()
    };
    let must_refuse = counted(&|f| f == Fate::Refused);
    let may_refuse = counted(&|f| matches!(f, Fate::Refused | Fate::ReadOrRefused));
    let accounted = counted(&|f| f != Fate::Skipped);
    match outcome {
        Ok(recording) => {
            prop_assert!(
                must_refuse.is_empty(),
                "bad items accepted: {:?}",
                must_refuse
            );
            let read: Vec<Origin> = recording.exchanges.iter().map(|e| e.origin).collect();
            prop_assert_eq!(&read, &accounted, "every item read, in order");
            for exchange in &recording.exchanges {
                let i = (0..fates.len())
                    .find(|i| origin(*i) == exchange.origin)
                    .unwrap();
                if let Some(g) = goods[i] {
                    prop_assert_eq!(&exchange.method, &g.method);
                    prop_assert_eq!(&exchange.path, &g.path);
                    prop_assert_eq!(exchange.status, g.status);
                    prop_assert_eq!(
                        exchange.duration_nanos,
                        (g.duration_ms * 1e6).round() as u64
                    );
                    if g.status.is_some() {
                        prop_assert_eq!(&exchange.response_body, g.body.as_bytes());
                    }
                }
            }
        }
        Err(Error::Invalid(problems)) => {
            let refused: Vec<Origin> = problems.iter().map(|p| p.origin).collect();
            prop_assert!(!refused.is_empty());
            for o in &must_refuse {
                prop_assert!(refused.contains(o), "{} not refused: {:?}", o, problems);
            }
            for o in &refused {
                prop_assert!(may_refuse.contains(o), "{} refused: {:?}", o, problems);
            }
            let mut sorted = refused.clone();
            sorted.sort_by_key(|o| match o {
                Origin::Line(n) | Origin::Entry(n) => *n,
            });
            prop_assert_eq!(&sorted, &refused, "problems in file order");
            let shown = Error::Invalid(problems.clone()).to_string();
            for problem in problems.iter().take(20) {
                prop_assert!(!problem.message.is_empty());
                prop_assert!(
                    shown.contains(&format!("\n  {}: ", problem.origin)),
                    "{}",
                    shown
                );
            }
        }
        Err(Error::File(message)) => {
            prop_assert!(accounted.is_empty(), "{}: {:?}", message, accounted);
        }
        Err(other) => prop_assert!(false, "unexpected error {}", other),
    }
    Ok(())
}

fn har_entry(g: &Good) -> Value {
    let mut entry = json!({
        "time": g.duration_ms,
        "request": {
            "method": g.method,
            "url": format!("https://api.example{}", g.path),
            "headers": [{"name": ":authority", "value": "api.example"}, {"name": "Accept", "value": "*/*"}],
        },
        "response": {"status": g.status.unwrap_or(0), "headers": []},
    });
    if g.status.is_some() {
        entry["response"]["content"] = if g.base64 {
            json!({"size": g.body.len(), "text": base64(g.body.as_bytes()), "encoding": "base64"})
        } else {
            json!({"size": g.body.len(), "text": g.body})
        };
    }
    if g.start {
        entry["startedDateTime"] = json!("2026-01-01T00:00:00Z");
    }
    entry
}

fn har_bad(g: &Good, kind: u8) -> Value {
    let mut entry = har_entry(g);
    match kind % 8 {
        0 => entry["response"]["status"] = json!(42),
        1 => entry["time"] = json!(-1),
        2 => entry["request"]["url"] = json!("/relative"),
        3 => entry["request"]["method"] = json!("GET /x"),
        4 => drop(entry.as_object_mut().map(|o| o.remove("request"))),
        5 => entry["startedDateTime"] = json!("soon"),
        6 => entry["response"]["content"] = json!({"text": "x", "encoding": "gzip"}),
        _ => entry["request"]["postData"] = json!({"text": "@@", "encoding": "base64"}),
    }
    entry
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_give_an_answer_never_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        har_prefix in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if har_prefix {
            // Past the first checks of the HAR reader.
            let mut with_log = br#"{"log":{"entries":[{"time":1,"#.to_vec();
            with_log.extend_from_slice(&bytes);
            bytes = with_log;
        }
        let text = String::from_utf8_lossy(&bytes);
        for format in [Format::JsonLines, Format::Har] {
            let _ = replay::parse(&text, format);
        }
        // From a file, invalid UTF-8 included, with the format told apart by content.
        let dir = std::env::temp_dir().join(format!("prompter-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:016x}.rec", fnv1a(&bytes)));
        std::fs::write(&path, &bytes).unwrap();
        let outcome = replay::load(&path, None);
        std::fs::remove_file(&path).unwrap();
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert!(matches!(outcome, Err(Error::Read { .. })), "{:?}", outcome.map(|r| r.exchanges.len()));
        }
    }

    #[test]
    fn json_lines_mixing_good_and_bad_lines_name_every_bad_one(
        items in prop::collection::vec(item(), 0..14),
        crlf in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let lines: Vec<(String, Fate)> = items.iter().map(jsonl_line).collect();
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = String::from(if bom { "\u{FEFF}" } else { "" });
        for (line, _) in &lines {
            text.push_str(line);
            text.push_str(end);
        }
        let fates: Vec<Fate> = lines.iter().map(|(_, f)| *f).collect();
        let goods: Vec<Option<&Good>> = items
            .iter()
            .map(|i| match i { Item::Good(g) => Some(g), _ => None })
            .collect();
        let outcome = replay::parse(&text, Format::JsonLines);
        check_fates(outcome, &fates, &goods, |i| Origin::Line(i + 1))?;
    }

    #[test]
    fn har_entries_mixing_good_and_bad_ones_name_every_bad_one(
        items in prop::collection::vec(item(), 0..10),
    ) {
        let mut entries = Vec::new();
        let mut fates = Vec::new();
        let mut goods = Vec::new();
        for item in &items {
            let (entry, fate, good) = match item {
                Item::Good(g) => (har_entry(g), Fate::Read, Some(g)),
                Item::Bad(g, kind) => (har_bad(g, *kind), Fate::Refused, None),
                // A HAR entry is a JSON value, not text to overwrite: a wrong type instead.
                Item::Mutated(g, _) => {
                    let mut entry = har_entry(g);
                    entry["time"] = json!("soon");
                    (entry, Fate::Refused, None)
                }
                // A HAR file has no blank or comment entries.
                Item::Blank | Item::Comment => continue,
            };
            entries.push(entry);
            fates.push(fate);
            goods.push(good);
        }
        let text = json!({"log": {"version": "1.2", "entries": entries}}).to_string();
        prop_assert_eq!(Format::detect(std::path::Path::new("x.rec"), &text), Format::Har);
        let outcome = replay::parse(&text, Format::Har);
        check_fates(outcome, &fates, &goods, Origin::Entry)?;
    }

    #[test]
    fn a_mutated_har_file_gives_an_answer_never_a_panic(
        items in prop::collection::vec(good(), 1..6),
        edits in prop::collection::vec((any::<Index>(), 0x20u8..0x7f), 1..6),
    ) {
        let entries: Vec<Value> = items.iter().map(har_entry).collect();
        let text = mutate(json!({"log": {"entries": entries}}).to_string(), &edits);
        match replay::parse(&text, Format::Har) {
            Ok(recording) => prop_assert!(!recording.exchanges.is_empty()),
            Err(Error::Invalid(problems)) => prop_assert!(!problems.is_empty()),
            Err(Error::File(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

/// A name for a temporary file (FNV-1a of its bytes).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
