//! The scenario list of [`conformance_suite!`](crate::conformance_suite) is written by hand; this
//! test fails when a scenario is written and not listed (every driver would silently skip it),
//! or listed twice, or listed and gone.

use std::collections::BTreeSet;

/// Every topic file's source: its scenarios are its `pub async fn name<D: Driver>`.
const TOPICS: [&str; 8] = [
    include_str!("failure_model.rs"),
    include_str!("faults.rs"),
    include_str!("hedging.rs"),
    include_str!("learning.rs"),
    include_str!("limits.rs"),
    include_str!("streaming.rs"),
    include_str!("translation.rs"),
    include_str!("validity.rs"),
];

fn written() -> BTreeSet<String> {
    TOPICS
        .iter()
        .flat_map(|source| source.lines())
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .filter(|rest| rest.contains("<D: Driver>"))
        .map(|rest| rest.split('<').next().unwrap_or_default().to_owned())
        .collect()
}

fn listed() -> Vec<String> {
    let source = include_str!("mod.rs");
    let start = source
        .find("@scenarios $driver;")
        .expect("the macro's list");
    let list = &source[start..];
    let end = list.find(");").expect("the end of the list");
    list[..end]
        .lines()
        .skip(1)
        .map(|line| line.trim().trim_end_matches(',').to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_scenario_is_listed_once() {
    let written = written();
    let listed = listed();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a scenario is listed twice");
    let missing: Vec<_> = written.difference(&unique).collect();
    let stale: Vec<_> = unique.difference(&written).collect();
    assert!(
        missing.is_empty(),
        "scenarios not in conformance_suite!: {missing:?}"
    );
    assert!(stale.is_empty(), "listed but not written: {stale:?}");
    assert!(
        written.len() >= 43,
        "found only {} scenarios",
        written.len()
    );
}
