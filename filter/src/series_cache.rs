//! A map from a series (a metric and its label values) to whatever a sink resolved for it,
//! looked up without building the series' stat name.
//!
//! A stat name is ~100 bytes of encoded labels; building, hashing and comparing one per event
//! was most of the cost of recording a request. The label values themselves are a few short
//! strings: they are hashed in place, and a hit compares them against the stored copy. A miss
//! (a series seen for the first time) is the only path that allocates. A series whose
//! producer gave a [`ValuesKey`](crate::events::ValuesKey) is found by that number alone once
//! it has been seen with it.

use rustc_hash::FxHashMap;

use crate::bytes;

use crate::events::MetricId;
use crate::events::Series;

#[derive(Debug)]
struct Entry<V> {
    metric: MetricId,
    values: Box<[Box<str>]>,
    value: V,
    /// The next entry whose key has the same hash (a collision chain, almost always empty).
    next: Option<usize>,
}

impl<V> Entry<V> {
    fn holds(&self, series: &Series<'_>) -> bool {
        self.metric == series.metric
            && self.values.len() == series.values.len()
            && self
                .values
                .iter()
                .zip(series.values)
                .all(|(stored, value)| bytes::eq(stored.as_bytes(), value.as_bytes()))
    }
}

#[derive(Debug)]
pub struct SeriesCache<V> {
    /// Hash of a series → its first entry.
    heads: FxHashMap<u64, usize>,
    /// (metric, values key) → the entry of a keyed series.
    keyed: FxHashMap<(u64, u64), usize>,
    entries: Vec<Entry<V>>,
}

impl<V> Default for SeriesCache<V> {
    fn default() -> Self {
        SeriesCache {
            heads: FxHashMap::default(),
            keyed: FxHashMap::default(),
            entries: Vec::new(),
        }
    }
}

/// The values' lengths are hashed with them, which keeps `["ab", "c"]` and `["a", "bc"]`
/// apart.
fn hash(series: &Series<'_>) -> u64 {
    series.values.iter().fold(series.metric.key(), |h, value| {
        bytes::hash(h, value.as_bytes())
    })
}

impl<V> SeriesCache<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value stored for `series`. A keyed series found by its values is remembered by
    /// its key from then on.
    pub fn get(&mut self, series: &Series<'_>) -> Option<&V> {
        let keyed = series.key.map(|key| (series.metric.key(), key.0));
        if let Some(&index) = keyed.and_then(|keyed| self.keyed.get(&keyed)) {
            let entry = &self.entries[index];
            debug_assert!(entry.holds(series), "{series:?} is not its key's series");
            return Some(&entry.value);
        }
        let index = self.find(series)?;
        if let Some(keyed) = keyed {
            self.keyed.insert(keyed, index);
        }
        Some(&self.entries[index].value)
    }

    fn find(&self, series: &Series<'_>) -> Option<usize> {
        let mut at = self.heads.get(&hash(series)).copied();
        while let Some(index) = at {
            let entry = &self.entries[index];
            if entry.holds(series) {
                return Some(index);
            }
            at = entry.next;
        }
        None
    }

    /// Stores `value` for `series` (which [`get`](Self::get) did not find) and returns it.
    pub fn insert(&mut self, series: &Series<'_>, value: V) -> &V {
        let index = self.entries.len();
        let next = self.heads.insert(hash(series), index);
        if let Some(key) = series.key {
            self.keyed.insert((series.metric.key(), key.0), index);
        }
        self.entries.push(Entry {
            metric: series.metric,
            values: series.values.iter().map(|v| Box::from(*v)).collect(),
            value,
            next,
        });
        &self.entries[index].value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Metric;
    use crate::events::ValuesKey;

    fn series<'a>(metric: Metric, values: &'a [&'a str]) -> Series<'a> {
        Series::new(metric, values)
    }

    #[test]
    fn a_series_is_found_by_its_metric_and_every_value() {
        let mut cache = SeriesCache::default();
        cache.insert(&series(Metric::ResultsInsert, &["api", "dev"]), 1);
        cache.insert(&series(Metric::RedisUp, &["api", "dev"]), 2);
        cache.insert(&series(Metric::ResultsInsert, &["api", "prod"]), 3);
        assert_eq!(
            cache.get(&series(Metric::ResultsInsert, &["api", "dev"])),
            Some(&1)
        );
        assert_eq!(
            cache.get(&series(Metric::RedisUp, &["api", "dev"])),
            Some(&2)
        );
        assert_eq!(
            cache.get(&series(Metric::ResultsInsert, &["api", "prod"])),
            Some(&3)
        );
        assert_eq!(
            cache.get(&series(Metric::ResultsInsert, &["apid", "ev"])),
            None
        );
        assert_eq!(cache.get(&series(Metric::ResultsInsert, &["api"])), None);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_keyed_series_is_one_entry_found_by_its_key_or_its_values() {
        let mut cache = SeriesCache::default();
        let values = ["api", "dev"];
        let keyed = |key| series(Metric::ResultsInsert, &values).with_key(Some(ValuesKey(key)));
        cache.insert(&keyed(7), 1);
        assert_eq!(cache.get(&keyed(7)), Some(&1));
        // Unkeyed, or under another key that determines the same values: the same entry,
        // and the new key is remembered.
        assert_eq!(cache.get(&series(Metric::ResultsInsert, &values)), Some(&1));
        assert_eq!(cache.get(&keyed(8)), Some(&1));
        assert_eq!(
            cache.keyed.get(&(Metric::ResultsInsert as u64, 8)),
            Some(&0)
        );
        // A key is the metric's: another metric's series under the same number is another.
        let other = series(Metric::RedisUp, &values).with_key(Some(ValuesKey(7)));
        assert_eq!(cache.get(&other), None);
        cache.insert(&other, 2);
        assert_eq!(cache.get(&other), Some(&2));
        assert_eq!(cache.get(&keyed(7)), Some(&1));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn colliding_hashes_keep_both_series() {
        // Force a collision: chain a second entry behind the first one's hash.
        let mut cache = SeriesCache::default();
        let first = series(Metric::ResultsInsert, &["a", "b"]);
        let second = series(Metric::ResultsInsert, &["c", "d"]);
        cache.insert(&first, "first");
        cache.entries.push(Entry {
            metric: second.metric,
            values: Box::new([Box::from("c"), Box::from("d")]),
            value: "second",
            next: Some(0),
        });
        cache.heads.insert(hash(&first), 1);
        assert_eq!(cache.get(&first), Some(&"first"));
        cache.heads.insert(hash(&second), 1);
        assert_eq!(cache.get(&second), Some(&"second"));
    }
}
