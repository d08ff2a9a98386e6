//! In-memory state of the sample: templates, counters and the simulated Redis flag.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::openapi;

/// A stored prompt template, serialised as the `TemplateOut` schema.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub body: String,
}

/// Why a template could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    Duplicate,
}

/// Shared state of one sample server; every connection sees the same instance.
#[derive(Debug)]
pub struct SampleApi {
    templates: Mutex<Vec<Template>>,
    redis_up: AtomicBool,
    requests: AtomicU64,
    results: AtomicU64,
    openapi_mode: AtomicU8,
    openapi_served: AtomicU64,
}

impl Default for SampleApi {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleApi {
    /// Empty store with Redis reported as up.
    pub fn new() -> Self {
        Self::with_redis(true)
    }

    /// Empty store with the given initial Redis health.
    pub fn with_redis(up: bool) -> Self {
        Self {
            templates: Mutex::new(Vec::new()),
            redis_up: AtomicBool::new(up),
            requests: AtomicU64::new(0),
            results: AtomicU64::new(0),
            openapi_mode: AtomicU8::new(openapi::Mode::Standard.as_u8()),
            openapi_served: AtomicU64::new(0),
        }
    }

    // A handler panicking mid-update must not take the whole sample down with
    // it, so a poisoned lock is simply reused.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Template>> {
        self.templates
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn create_template(&self, name: &str, body: &str) -> Result<Template, CreateError> {
        let mut templates = self.lock();
        if templates.iter().any(|t| t.name == name) {
            return Err(CreateError::Duplicate);
        }
        let template = Template {
            id: format!("t-{}", templates.len() + 1),
            name: name.to_owned(),
            body: body.to_owned(),
        };
        templates.push(template.clone());
        Ok(template)
    }

    pub fn template(&self, id: &str) -> Option<Template> {
        self.lock().iter().find(|t| t.id == id).cloned()
    }

    pub fn templates(&self) -> Vec<Template> {
        self.lock().clone()
    }

    pub fn template_count(&self) -> usize {
        self.lock().len()
    }

    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn set_redis(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }

    /// What `/openapi.json` serves.
    pub fn openapi_mode(&self) -> openapi::Mode {
        openapi::Mode::from_u8(self.openapi_mode.load(Ordering::Relaxed))
    }

    pub fn set_openapi_mode(&self, mode: openapi::Mode) {
        self.openapi_mode.store(mode.as_u8(), Ordering::Relaxed);
    }

    /// How many times `/openapi.json` was served.
    pub fn openapi_served(&self) -> u64 {
        self.openapi_served.load(Ordering::Relaxed)
    }

    pub(crate) fn openapi_document(&self) -> Vec<u8> {
        self.openapi_served.fetch_add(1, Ordering::Relaxed);
        openapi::serve(self.openapi_mode())
    }

    /// Requests served so far, not counting the `/__sample/*` control routes.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn next_result_id(&self) -> String {
        format!("r-{}", self.results.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_creation_order_and_names_are_unique() {
        let api = SampleApi::new();
        assert_eq!(
            api.create_template("a", "x").map(|t| t.id),
            Ok("t-1".into())
        );
        assert_eq!(
            api.create_template("b", "y").map(|t| t.id),
            Ok("t-2".into())
        );
        assert_eq!(api.create_template("a", "z"), Err(CreateError::Duplicate));
        assert_eq!(api.template("t-2").map(|t| t.name), Some("b".into()));
        assert_eq!(api.template_count(), 2);
    }
}
