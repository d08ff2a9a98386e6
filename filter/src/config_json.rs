//! One JSON object of the configuration, read into typed settings: each error names the field
//! by its full path (`openapi.max_bytes`, `unique_violations[0].table`) and says why; unknown
//! and repeated keys are refused, and `null` means the field is not set.

use crate::config::{invalid, ConfigError};
use crate::json::{self, Value};

/// The members of one configuration object not read yet.
#[derive(Debug)]
pub(crate) struct Fields {
    /// What errors call the document itself (`(document)`, `(vm configuration)`).
    root: &'static str,
    /// Where the object sits in the document ("" for the document itself).
    path: String,
    members: Vec<(String, Value)>,
}

impl Fields {
    /// The document's top-level object, whose keys must be among `known`; an empty (or
    /// all-whitespace) document is an empty object: every setting at its default.
    pub fn document(root: &'static str, json: &[u8], known: &[&str]) -> Result<Self, ConfigError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::empty(root, String::new()));
        }
        let value = json::parse(json).map_err(|e| invalid(root, e.to_string()))?;
        Self::new(root, String::new(), value, known)
    }

    /// An object with nothing set, at `path`: every setting read from it is at its default.
    fn empty(root: &'static str, path: String) -> Self {
        Fields {
            root,
            path,
            members: Vec::new(),
        }
    }

    /// The object at `path`, whose keys must all be among `known` (each once).
    fn new(
        root: &'static str,
        path: String,
        value: Value,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        let name = if path.is_empty() { root } else { &path };
        let Value::Object(members) = value else {
            return Err(invalid(
                name,
                format!("must be an object, not {}", value.kind()),
            ));
        };
        for (i, (key, _)) in members.iter().enumerate() {
            let field = join(&path, key);
            if !known.contains(&key.as_str()) {
                return Err(invalid(
                    field,
                    format!("unknown field; {name} takes {}", known.join(", ")),
                ));
            }
            if members[..i].iter().any(|(earlier, _)| earlier == key) {
                return Err(invalid(field, "given twice"));
            }
        }
        Ok(Fields {
            root,
            path,
            members,
        })
    }

    /// The path of this object in the document (the document's own name for the document).
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            self.root
        } else {
            &self.path
        }
    }

    /// The full path of `key` in this object.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`, if it is set to something other than `null`.
    fn take(&mut self, key: &str) -> Option<Value> {
        let i = self.members.iter().position(|(k, _)| k == key)?;
        match self.members.swap_remove(i).1 {
            Value::Null => None,
            value => Some(value),
        }
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        self.take(key)
            .map(|value| as_string(self.path_of(key), value))
            .transpose()
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong_kind(self.path_of(key), "true or false", &other)),
        }
    }

    /// A whole number, written without fraction or exponent.
    pub fn whole(&mut self, key: &str) -> Result<Option<u64>, ConfigError> {
        let field = self.path_of(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(text)) if text.bytes().all(|b| b.is_ascii_digit()) => text
                .parse()
                .map(Some)
                .map_err(|_| invalid(field, format!("{text} is too large"))),
            Some(Value::Number(text)) => Err(invalid(
                field,
                format!("must be a whole number, not {text}"),
            )),
            Some(other) => Err(wrong_kind(field, "a whole number", &other)),
        }
    }

    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.array(key, as_string)
    }

    /// An array of numbers, as written.
    pub fn numbers(&mut self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.array(key, |field, value| match value {
            Value::Number(text) => Ok(text),
            other => Err(wrong_kind(field, "a number", &other)),
        })
    }

    /// A string that must be set.
    pub fn required_string(&mut self, key: &str) -> Result<String, ConfigError> {
        self.string(key)?
            .ok_or_else(|| invalid(self.path_of(key), "is required"))
    }

    /// The object at `key`, whose keys must be among `known`.
    pub fn object(&mut self, key: &str, known: &[&str]) -> Result<Option<Fields>, ConfigError> {
        let path = self.path_of(key);
        self.take(key)
            .map(|value| Fields::new(self.root, path, value, known))
            .transpose()
    }

    /// The object at `key`, or an empty one when it is not set: a section whose settings all
    /// have defaults.
    pub fn section(&mut self, key: &str, known: &[&str]) -> Result<Fields, ConfigError> {
        Ok(self
            .object(key, known)?
            .unwrap_or_else(|| Self::empty(self.root, self.path_of(key))))
    }

    /// An array of objects, whose keys must be among `known`.
    pub fn objects(
        &mut self,
        key: &str,
        known: &[&str],
    ) -> Result<Option<Vec<Fields>>, ConfigError> {
        let root = self.root;
        self.array(key, |field, value| Fields::new(root, field, value, known))
    }

    fn array<T>(
        &mut self,
        key: &str,
        mut item: impl FnMut(String, Value) -> Result<T, ConfigError>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let field = self.path_of(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(values)) => values
                .into_iter()
                .enumerate()
                .map(|(i, value)| item(format!("{field}[{i}]"), value))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(wrong_kind(field, "an array", &other)),
        }
    }
}

fn wrong_kind(field: String, expected: &str, got: &Value) -> ConfigError {
    invalid(field, format!("must be {expected}, not {}", got.kind()))
}

fn as_string(field: String, value: Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(wrong_kind(field, "a string", &other)),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str, known: &[&str]) -> Result<Fields, ConfigError> {
        Fields::document("(document)", json.as_bytes(), known)
    }

    fn error(result: Result<impl std::fmt::Debug, ConfigError>) -> (String, String) {
        let e = result.unwrap_err();
        (e.field, e.reason)
    }

    #[test]
    fn typed_reads_and_null_as_unset() {
        let mut f = fields(
            r#"{"s":"x","b":true,"n":42,"l":["a"],"v":[1,0.5],"o":{"k":null},"a":[{}],"z":null}"#,
            &["s", "b", "n", "l", "v", "o", "a", "z", "unset"],
        )
        .unwrap();
        assert_eq!(f.string("s").unwrap().as_deref(), Some("x"));
        assert_eq!(f.bool("b").unwrap(), Some(true));
        assert_eq!(f.whole("n").unwrap(), Some(42));
        assert_eq!(f.strings("l").unwrap(), Some(vec!["a".to_string()]));
        assert_eq!(
            f.numbers("v").unwrap(),
            Some(vec!["1".to_string(), "0.5".to_string()])
        );
        let mut o = f.object("o", &["k"]).unwrap().unwrap();
        assert_eq!(o.path_of("k"), "o.k");
        assert_eq!(o.string("k").unwrap(), None);
        assert_eq!(
            error(o.required_string("k")),
            ("o.k".into(), "is required".into())
        );
        let mut absent = f.section("unset", &["k"]).unwrap();
        assert_eq!(absent.string("k").unwrap(), None);
        assert_eq!(absent.path_of("k"), "unset.k");
        let a = f.objects("a", &["k"]).unwrap().unwrap();
        assert_eq!(a[0].path_of("k"), "a[0].k");
        assert_eq!(f.string("z").unwrap(), None);
        assert_eq!(f.string("unset").unwrap(), None);
        assert!(fields(" \n", &[]).unwrap().members.is_empty());
    }

    #[test]
    fn unknown_repeated_and_mistyped_fields_are_named() {
        let known = &["a", "n", "o", "l"];
        let (field, reason) = error(fields(r#"{"a":1,"b":2}"#, known));
        assert_eq!(
            (field.as_str(), reason.as_str()),
            ("b", "unknown field; (document) takes a, n, o, l")
        );
        let (field, reason) = error(fields(r#"{"a":1,"a":2}"#, known));
        assert_eq!((field.as_str(), reason.as_str()), ("a", "given twice"));
        let (field, reason) = error(fields("[]", known));
        assert_eq!(
            (field.as_str(), reason.as_str()),
            ("(document)", "must be an object, not an array")
        );

        let mut f = fields(r#"{"a":"1","n":1.0,"o":{"x":1},"l":["a",2]}"#, known).unwrap();
        assert_eq!(
            error(f.whole("a")),
            ("a".into(), "must be a whole number, not a string".into())
        );
        assert_eq!(
            error(f.whole("n")),
            ("n".into(), "must be a whole number, not 1.0".into())
        );
        assert_eq!(
            error(f.object("o", &["y"])),
            ("o.x".into(), "unknown field; o takes y".into())
        );
        let e = Fields::document("(vm configuration)", b"{", &[]).unwrap_err();
        assert_eq!(e.field, "(vm configuration)");
        assert!(
            e.reason.starts_with("not JSON: the document ends early"),
            "{}",
            e.reason
        );
        assert_eq!(
            error(f.strings("l")),
            ("l[1]".into(), "must be a string, not a number".into())
        );

        let mut f = fields(r#"{"n":18446744073709551616,"a":-1}"#, known).unwrap();
        assert_eq!(error(f.whole("n")).1, "18446744073709551616 is too large");
        assert_eq!(error(f.whole("a")).1, "must be a whole number, not -1");
    }
}
