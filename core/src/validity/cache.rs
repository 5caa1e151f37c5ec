//! Compiled expectations, one per distinct `(response_format, tools)`, so a schema is compiled
//! once and not on every request. Keyed by a hash of the two values and confirmed by comparing
//! them (a hash collision costs a compile, never a wrong schema). At most [`CAPACITY`] entries;
//! the least recently used goes first.

use super::expect::{Expectation, SchemaError};
use serde_json::Value;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// Distinct schemas kept compiled.
pub const CAPACITY: usize = 64;

#[derive(Debug)]
struct Entry {
    hash: u64,
    response_format: Option<Value>,
    tools: Option<Value>,
    /// `None`: the request asks for nothing checkable (cached too, so it is not re-read).
    expectation: Option<Arc<Expectation>>,
    used: u64,
}

/// The cache (a linear scan over at most 64 hashes beats any map at this size).
#[derive(Debug, Default)]
pub(crate) struct ExpectationCache {
    entries: Vec<Entry>,
    tick: u64,
    compiled: u64,
}

impl ExpectationCache {
    /// The expectation for these two request fields, compiling it on a miss.
    pub(crate) fn get(
        &mut self,
        response_format: Option<&Value>,
        tools: Option<&Value>,
    ) -> Result<Option<Arc<Expectation>>, SchemaError> {
        let hash = hash_pair(response_format, tools);
        self.tick += 1;
        if let Some(entry) = self.entries.iter_mut().find(|e| {
            e.hash == hash
                && e.response_format.as_ref() == response_format
                && e.tools.as_ref() == tools
        }) {
            entry.used = self.tick;
            return Ok(entry.expectation.clone());
        }
        let expectation = Expectation::compile(response_format, tools)?.map(Arc::new);
        self.compiled += 1;
        if self.entries.len() >= CAPACITY
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        self.entries.push(Entry {
            hash,
            response_format: response_format.cloned(),
            tools: tools.cloned(),
            expectation: expectation.clone(),
            used: self.tick,
        });
        Ok(expectation)
    }

    /// Schemas compiled so far (a miss compiles; a hit does not).
    pub(crate) fn compiled(&self) -> u64 {
        self.compiled
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn hash_pair(a: Option<&Value>, b: Option<&Value>) -> u64 {
    let mut h = DefaultHasher::new();
    for v in [a, b] {
        match v {
            Some(v) => hash_value(v, &mut h),
            None => h.write_u8(0xFF),
        }
    }
    h.finish()
}

/// Hashes a JSON value (serde_json's `Value` has no `Hash`). The request's shape check bounded
/// the schemas' depth, so the recursion is bounded too.
fn hash_value(value: &Value, h: &mut DefaultHasher) {
    match value {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            b.hash(h);
        }
        Value::Number(n) => {
            h.write_u8(2);
            n.to_string().hash(h);
        }
        Value::String(s) => {
            h.write_u8(3);
            s.hash(h);
        }
        Value::Array(items) => {
            h.write_u8(4);
            h.write_usize(items.len());
            items.iter().for_each(|v| hash_value(v, h));
        }
        Value::Object(map) => {
            h.write_u8(5);
            h.write_usize(map.len());
            for (k, v) in map {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn format(n: usize) -> Value {
        json!({"type":"json_schema","json_schema":{"schema":{"type":"object","maxProperties":n}}})
    }

    #[test]
    fn compiles_once_per_distinct_schema_and_stays_bounded() {
        let mut cache = ExpectationCache::default();
        for _ in 0..3 {
            assert!(cache.get(Some(&format(1)), None).unwrap().is_some());
        }
        assert_eq!(cache.compiled(), 1);
        for n in 0..1000 {
            cache.get(Some(&format(n)), None).unwrap();
        }
        assert_eq!(cache.len(), CAPACITY);
        // The most recent stay; the first one was evicted and compiles again.
        let before = cache.compiled();
        cache.get(Some(&format(999)), None).unwrap();
        assert_eq!(cache.compiled(), before);
        cache.get(Some(&format(0)), None).unwrap();
        assert_eq!(cache.compiled(), before + 1);
    }

    #[test]
    fn a_compile_error_is_not_cached_as_a_success() {
        let mut cache = ExpectationCache::default();
        let bad = json!({"type":"json_schema","json_schema":{"schema":{"type":7}}});
        assert!(cache.get(Some(&bad), None).is_err());
        assert!(cache.get(Some(&bad), None).is_err());
        assert_eq!(cache.len(), 0);
    }
}
