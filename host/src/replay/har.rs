//! HAR 1.2 recordings (`log.entries[]`), as browsers and proxies export them. Only the
//! fields an exchange needs are read; the many others a HAR carries are ignored.

use serde::Deserialize;
use serde_json::Value;

use super::{
    decode_base64, start_time, status, Draft, Error, Exchange, Origin, Problem, Recording,
};

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "startedDateTime")]
    started: Option<String>,
    time: f64,
    request: Request,
    response: Response,
}

#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(rename = "postData")]
    post_data: Option<PostData>,
    #[serde(rename = "bodySize")]
    body_size: Option<f64>,
}

#[derive(Deserialize)]
struct PostData {
    text: Option<String>,
    encoding: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Deserialize)]
struct Response {
    status: i64,
    #[serde(default)]
    headers: Vec<Header>,
    content: Option<Content>,
}

#[derive(Deserialize)]
struct Content {
    size: Option<f64>,
    text: Option<String>,
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

pub(super) fn parse(text: &str) -> Result<Recording, Error> {
    let not_har = |why: String| Error::File(format!("not a HAR file: {why}"));
    let mut document: Value = serde_json::from_str(text).map_err(|e| not_har(e.to_string()))?;
    let log = document
        .get_mut("log")
        .filter(|log| log.is_object())
        .ok_or_else(|| not_har("no top-level `log` object".into()))?;
    let entries = match log.get_mut("entries") {
        Some(Value::Array(entries)) => std::mem::take(entries),
        Some(_) => return Err(not_har("`log.entries` is not an array".into())),
        None => return Err(not_har("no `log.entries`".into())),
    };
    let mut recording = Recording::default();
    let mut problems = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let origin = Origin::Entry(index);
        let mut warn = |message: String| recording.warnings.push(Problem { origin, message });
        match serde_json::from_value(entry)
            .map_err(|e| e.to_string())
            .and_then(|entry| exchange(origin, entry, &mut warn))
        {
            Ok(exchange) => recording.exchanges.push(exchange),
            Err(message) => problems.push(Problem { origin, message }),
        }
    }
    if problems.is_empty() {
        Ok(recording)
    } else {
        Err(Error::Invalid(problems))
    }
}

fn exchange(
    origin: Origin,
    entry: Entry,
    warn: &mut dyn FnMut(String),
) -> Result<Exchange, String> {
    let (authority, path) = split_url(&entry.request.url)?;
    let request_body = match entry.request.post_data {
        Some(post) => {
            if post.text.is_none() && !post.params.is_empty() {
                warn("request body recorded only as `postData.params`: replayed without it".into());
            }
            decode(post.text, post.encoding.as_deref(), "request.postData")?
        }
        None => {
            if entry.request.body_size.is_some_and(|size| size > 0.0) {
                warn("request body not recorded (no `postData`): replayed without it".into());
            }
            Vec::new()
        }
    };
    let status = status(entry.response.status, "response.status")?;
    let content = entry.response.content.unwrap_or(Content {
        size: None,
        text: None,
        encoding: None,
    });
    if content.text.is_none() && content.size.is_some_and(|size| size > 0.0) {
        warn("response body not recorded (no `response.content.text`): replayed without it".into());
    }
    let mut response_body = decode(
        content.text,
        content.encoding.as_deref(),
        "response.content",
    )?;
    if status.is_none() && !response_body.is_empty() {
        warn("`response.status` 0 (no response): its recorded body is not replayed".into());
        response_body.clear();
    }
    let pairs = |headers: Vec<Header>| {
        headers
            .into_iter()
            .filter(|h| !h.name.starts_with(':'))
            .map(|h| (h.name, h.value))
            .collect()
    };
    Draft {
        origin,
        method: entry.request.method,
        path,
        authority: Some(authority),
        request_headers: pairs(entry.request.headers),
        request_body,
        status,
        response_headers: pairs(entry.response.headers),
        response_body,
        duration_ms: entry.time,
        start_nanos: entry
            .started
            .map(|t| start_time(&t, "startedDateTime"))
            .transpose()?,
    }
    .build("time")
}

fn decode(text: Option<String>, encoding: Option<&str>, field: &str) -> Result<Vec<u8>, String> {
    match (text, encoding) {
        (None, _) => Ok(Vec::new()),
        (Some(text), None | Some("")) => Ok(text.into_bytes()),
        (Some(text), Some("base64")) => {
            decode_base64(&text).map_err(|e| format!("`{field}.text`: {e}"))
        }
        (Some(_), Some(other)) => Err(format!(
            "`{field}.encoding`: `{other}` is not supported (only `base64`)"
        )),
    }
}

/// `https://host:port/p?q#f` → (`host:port`, `/p?q`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("`request.url`: `{url}` {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("is not an absolute URL"))?;
    if !["http", "https", "ws", "wss"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(bad("is not an HTTP URL"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = rest[..end].rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    let path = match &rest[end..] {
        "" => "/".to_string(),
        query if query.starts_with('?') => format!("/{query}"),
        path => path.to_string(),
    };
    Ok((authority.to_string(), path))
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_give_authority_and_path_with_query() {
        let split = |url| split_url(url).unwrap();
        assert_eq!(
            split("https://api.example:8443/api/prompt-templates/t-1/run?x=1#top"),
            (
                "api.example:8443".into(),
                "/api/prompt-templates/t-1/run?x=1".into()
            )
        );
        assert_eq!(split("http://u:p@h"), ("h".into(), "/".into()));
        assert_eq!(split("HTTP://h?x=1"), ("h".into(), "/?x=1".into()));
        for bad in ["/relative", "data:text/plain,hi", "ftp://h/x", "http:///x"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
