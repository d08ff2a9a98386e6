//! What an ended exchange records into the declared metrics it matches.

use std::borrow::Cow;

use super::{
    counter_delta, field_label, observation, Body, Duration, Entry, LabelBounds, LabelRule,
    LabelSource, ValueSource,
};
use crate::catalog::MetricKind;
use crate::config::Config;
use crate::events::{Event, MetricId, Series};
use crate::exchange::{DeclaredNeeds, Fields};
use crate::labels::{self, ModelLabels, OTHER};
use crate::scanner::FieldValue;

/// An ended exchange, as the declared metrics see it: its labels as the built-ins derive
/// them, its timings and its body fields.
pub(crate) struct Ended<'a> {
    pub method: &'static str,
    pub route: &'a str,
    pub status: &'a str,
    pub status_code: Option<u16>,
    pub started_nanos: u64,
    pub ended_nanos: u64,
    pub needs: &'a DeclaredNeeds,
    pub fields: &'a Fields<'a>,
}

impl Ended<'_> {
    /// Records every candidate entry whose status and response kind match.
    pub fn record(
        &self,
        config: &Config,
        models: &mut ModelLabels,
        emit: &mut impl FnMut(Event<'_>),
    ) {
        let declared = &config.declared;
        for (i, entry) in declared.entries.iter().enumerate() {
            let candidate = i < 64 && self.needs.candidates.entries & (1 << i) != 0;
            if candidate
                && entry
                    .when
                    .matches_response(self.status_code, self.needs.response_kind)
            {
                self.record_entry(config, entry, models, emit);
            }
        }
    }

    fn record_entry(
        &self,
        config: &Config,
        entry: &Entry,
        models: &mut ModelLabels,
        emit: &mut impl FnMut(Event<'_>),
    ) {
        let Some(metric) = config.declared.metrics.get(entry.metric) else {
            return;
        };
        let event_value = match &entry.value {
            ValueSource::One => Some(1),
            ValueSource::Field(bodies) => {
                let number = self.first(bodies, |v| v.as_number());
                match metric.kind {
                    MetricKind::Histogram => number.and_then(observation),
                    _ => number.and_then(counter_delta),
                }
            }
            ValueSource::Duration(d) => self.duration(*d),
        };
        // No value, no observation: a run without usage adds nothing to a token counter.
        let Some(value) = event_value else { return };

        let mut values: Vec<Cow<'_, str>> = Vec::with_capacity(entry.labels.len() + 2);
        values.push(Cow::Borrowed(&config.service));
        values.push(Cow::Borrowed(&config.env));
        for rule in &entry.labels {
            values.push(self.label(config, rule, models));
        }
        let values: Vec<&str> = values.iter().map(|v| &**v).collect();
        let series = Series::new(MetricId::Declared(entry.metric), &values);
        emit(match (metric.kind, &entry.value) {
            (MetricKind::Histogram, _) => Event::Observe(series, value),
            (_, ValueSource::One) => Event::Count(series),
            _ => Event::Add(series, value),
        });
    }

    fn label<'s>(
        &'s self,
        config: &'s Config,
        rule: &'s LabelRule,
        models: &mut ModelLabels,
    ) -> Cow<'s, str> {
        let bounds = &rule.bounds;
        match &rule.source {
            LabelSource::Constant(value) => Cow::Borrowed(value),
            LabelSource::Method => Cow::Borrowed(self.method),
            LabelSource::Route => Cow::Borrowed(self.route),
            LabelSource::Status => Cow::Borrowed(self.status),
            LabelSource::Provider => Cow::Borrowed(self.fields.provider(config)),
            LabelSource::Model => {
                let provider = self.fields.provider(config);
                Cow::Owned(self.fields.model(config, models, provider))
            }
            LabelSource::Header(index) => {
                let raw = self
                    .needs
                    .headers
                    .get(*index)
                    .and_then(Option::as_deref)
                    .filter(|raw| !raw.is_empty());
                let value = raw.map(|raw| labels::sanitize(raw, bounds.max_length));
                Cow::Owned(bounded(value, bounds, models))
            }
            LabelSource::Field(bodies) => {
                let value = self.first(bodies, |v| field_label(v, bounds.max_length));
                Cow::Owned(bounded(value, bounds, models))
            }
        }
    }

    /// The first body (in the entry's order) whose field gives a value through `read`.
    fn first<T>(&self, bodies: &[Body], read: impl Fn(&FieldValue) -> Option<T>) -> Option<T> {
        bodies.iter().find_map(|body| {
            read(match *body {
                Body::Request(i) => self.fields.request_field(i),
                Body::Response(i) => self.fields.response_field(i),
            })
        })
    }

    fn duration(&self, duration: Duration) -> Option<u64> {
        let at = match duration {
            Duration::Exchange => Some(self.ended_nanos),
            Duration::ResponseHeaders => self.needs.response_headers_nanos,
            Duration::FirstByte => self.needs.first_byte_nanos,
        }?;
        Some(at.saturating_sub(self.started_nanos))
    }
}

/// A label value from traffic, bounded: `absent` when there is none, `other` outside the
/// allow-list or beyond the budget of distinct values.
fn bounded(value: Option<String>, bounds: &LabelBounds, models: &mut ModelLabels) -> String {
    let Some(value) = value else {
        return bounds.absent.clone();
    };
    if value == OTHER {
        return value;
    }
    if let Some(allow) = &bounds.allow {
        if !allow.contains(&value) {
            return OTHER.to_string();
        }
    }
    match bounds.max_values {
        Some(max) => models.capped(&bounds.budget, value, max),
        None => value,
    }
}
