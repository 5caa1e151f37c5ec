//! The config decoder on arbitrary bytes: `RouterConfig::from_json` never panics; a config it
//! accepts validates again and builds a machine (provider URLs and headers are prepared without a
//! panic); an error names a field. Then, when the bytes are JSON, one string value (chosen by the
//! fuzzer) is replaced by a secret-looking canary and decoded again: the error, if any, never
//! contains it, nor does the `Debug` of an accepted config when the canary sits in an `api_key`,
//! a header value, the `proxy` or a `base_url` query.
#![no_main]

use f3dx_router_core::{RouterConfig, RouterMachine};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const CANARY: &str = "sk-canary-7f3a9c";

/// Replaces the `target`-th string value (depth first; object keys are not values) by the canary
/// and returns the path of object keys that led to it.
fn plant(value: &mut Value, target: &mut usize, path: &mut Vec<String>) -> bool {
    match value {
        Value::String(s) => {
            if *target == 0 {
                // In a URL, the canary goes into a query string; elsewhere it is the whole value.
                *s = if s.starts_with("http") {
                    format!("{s}?key={CANARY}")
                } else {
                    CANARY.to_owned()
                };
                return true;
            }
            *target -= 1;
            false
        }
        Value::Array(items) => items.iter_mut().any(|v| plant(v, target, path)),
        Value::Object(map) => map.iter_mut().any(|(k, v)| {
            path.push(k.clone());
            let found = plant(v, target, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

fn decode(bytes: &[u8]) -> Option<RouterConfig> {
    match RouterConfig::from_json(bytes) {
        Ok(config) => {
            config
                .validate()
                .expect("an accepted config validates again");
            RouterMachine::new(config.clone(), 7).expect("an accepted config builds a machine");
            Some(config)
        }
        Err(error) => {
            assert!(!error.field().is_empty());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let config = decode(json);
    let _ = format!("{config:?}");

    let Ok(mut value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let mut path = Vec::new();
    if !plant(&mut value, &mut usize::from(choice), &mut path) {
        return;
    }
    let planted = serde_json::to_vec(&value).expect("a Value serializes");
    match RouterConfig::from_json(&planted) {
        Err(error) => {
            let text = format!("{error} {error:?}");
            assert!(!text.contains("canary"), "{path:?}: {text}");
        }
        Ok(config) => {
            let secret_place = path
                .iter()
                .any(|k| matches!(k.as_str(), "api_key" | "headers" | "proxy" | "base_url"));
            if secret_place {
                let debug = format!("{config:?}");
                assert!(!debug.contains("canary"), "{path:?}: {debug}");
            }
        }
    }
});
