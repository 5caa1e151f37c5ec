//! The classifier: one [`KeyState`] per (provider, tenant, model), and the recently completed
//! requests a caller's report ([`crate::Input::Feedback`]) may still name.
//!
//! Keys live in entries per (tenant, model) holding one state per provider. At most
//! `max_keys` entries are kept; the least recently recorded one is evicted (its memory with
//! it). Lookups while nothing is excluded cost one integer comparison, so traffic that never
//! fails validation pays nothing for the classifier.

use super::window::{Admission, KeyState, Rule, Status};
use super::{ValidityConfig, ValidityStats};
use crate::id_map::{IdHasher, IdMap};
use crate::ids::{ProviderId, RequestId};
use crate::time::Time;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// A request's (tenant, model), as the classifier keys it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub(crate) tenant: Option<&'a Arc<str>>,
    pub(crate) model: &'a Arc<str>,
}

impl KeyRef<'_> {
    fn hash(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.tenant.map(|t| &**t).hash(&mut h);
        self.model.hash(&mut h);
        h.finish()
    }

    fn is(&self, entry: &Entry) -> bool {
        entry.tenant.as_deref() == self.tenant.map(|t| &**t) && *entry.model == **self.model
    }
}

#[derive(Debug)]
struct Entry {
    tenant: Option<Arc<str>>,
    model: Arc<str>,
    providers: Vec<KeyState>,
    /// Its position in the LRU order.
    tick: u64,
}

/// A completed request a report may still correct or complete.
#[derive(Debug)]
struct Recent {
    tenant: Option<Arc<str>>,
    model: Arc<str>,
    provider: ProviderId,
    at: Time,
    recorded: Option<bool>,
    probe: bool,
    seq: u64,
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackResult {
    /// Applied to the window of the request's provider, tenant and model.
    Applied,
    /// The id is not a request this machine completed recently: ignored (and counted).
    Unknown,
}

#[derive(Debug)]
pub(crate) struct Classifier {
    rule: Rule,
    classify: bool,
    max_keys: usize,
    feedback_ids: usize,
    providers: usize,
    entries: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    lru: BTreeMap<u64, u64>,
    tick: u64,
    /// Keys not `Ok` now: zero means every admission is `Yes` without a look-up.
    out: usize,
    recent: IdMap<RequestId, Recent>,
    recent_order: VecDeque<(RequestId, u64)>,
    seq: u64,
    pub(crate) ignored_feedback: u64,
}

impl Classifier {
    pub(crate) fn new(config: &ValidityConfig, providers: usize) -> Self {
        Classifier {
            rule: Rule {
                window: config.window as usize,
                min_samples: config.min_samples as usize,
                threshold: config.threshold,
                probe_after: config.probe_after(),
                recovery: config.recovery,
            },
            classify: config.classify,
            max_keys: config.max_keys as usize,
            feedback_ids: config.feedback_ids as usize,
            providers,
            entries: HashMap::default(),
            lru: BTreeMap::new(),
            tick: 0,
            out: 0,
            recent: IdMap::default(),
            recent_order: VecDeque::new(),
            seq: 0,
            ignored_feedback: 0,
        }
    }

    /// Whether any key is excluded or probing (else nobody is skipped).
    pub(crate) fn any_out(&self) -> bool {
        self.classify && self.out > 0
    }

    /// Whether `provider` may take a request of `key` now.
    pub(crate) fn admission(&self, now: Time, key: KeyRef<'_>, provider: ProviderId) -> Admission {
        if !self.any_out() {
            return Admission::Yes;
        }
        match self.entries.get(&key.hash()) {
            Some(e) if key.is(e) => e.providers[provider.0].admission(now),
            _ => Admission::Yes,
        }
    }

    /// `provider` was sent `key`'s recovery probe.
    pub(crate) fn probe_sent(&mut self, now: Time, key: KeyRef<'_>, provider: ProviderId) {
        let rule = self.rule;
        if let Some(e) = self.entries.get_mut(&key.hash())
            && key.is(e)
        {
            e.providers[provider.0].probe_sent(now, &rule);
        }
    }

    /// Records a validated answer of `provider` for `key`, answered at `at`.
    pub(crate) fn record(
        &mut self,
        now: Time,
        at: Time,
        key: KeyRef<'_>,
        provider: ProviderId,
        valid: bool,
        probe: bool,
    ) {
        let rule = self.rule;
        let state = self.touch(now, key, provider);
        let change = state.record(now, at, valid, probe, &rule);
        self.count(change);
    }

    fn count(&mut self, change: Option<bool>) {
        match change {
            Some(true) => self.out += 1,
            Some(false) => self.out -= 1,
            None => {}
        }
    }

    /// The key's state, created (evicting the least recently used entry when full) if new, and
    /// moved to the back of the LRU order.
    fn touch(&mut self, now: Time, key: KeyRef<'_>, provider: ProviderId) -> &mut KeyState {
        let hash = key.hash();
        self.tick += 1;
        let tick = self.tick;
        let known = self.entries.get(&hash).map(|e| key.is(e));
        if known == Some(false) {
            self.evict(hash); // A hash collision: the newer key takes the slot.
        }
        if known != Some(true) {
            if self.entries.len() >= self.max_keys
                && let Some((_, oldest)) = self.lru.pop_first()
            {
                self.evict(oldest);
            }
            self.entries.insert(
                hash,
                Entry {
                    tenant: key.tenant.cloned(),
                    model: key.model.clone(),
                    providers: vec![KeyState::new(now); self.providers],
                    tick,
                },
            );
        } else if let Some(e) = self.entries.get_mut(&hash) {
            self.lru.remove(&e.tick);
            e.tick = tick;
        }
        self.lru.insert(tick, hash);
        let entry = self.entries.get_mut(&hash).expect("inserted above");
        &mut entry.providers[provider.0]
    }

    fn evict(&mut self, hash: u64) {
        if let Some(e) = self.entries.remove(&hash) {
            self.lru.remove(&e.tick);
            self.out -= e
                .providers
                .iter()
                .filter(|k| k.status != Status::Ok)
                .count();
        }
    }

    /// Remembers a completed request for reports about it; `recorded` is the outcome already
    /// recorded for it, `probe` whether it probed its provider.
    pub(crate) fn remember(
        &mut self,
        id: RequestId,
        key: KeyRef<'_>,
        provider: ProviderId,
        at: Time,
        recorded: Option<bool>,
        probe: bool,
    ) {
        if self.feedback_ids == 0 {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.recent.insert(
            id,
            Recent {
                tenant: key.tenant.cloned(),
                model: key.model.clone(),
                provider,
                at,
                recorded,
                probe,
                seq,
            },
        );
        self.recent_order.push_back((id, seq));
        while self.recent_order.len() > self.feedback_ids {
            if let Some((old, seq)) = self.recent_order.pop_front()
                && self.recent.get(&old).is_some_and(|r| r.seq == seq)
            {
                self.recent.remove(&old);
            }
        }
    }

    /// A caller's report on a completed request.
    pub(crate) fn feedback(&mut self, now: Time, id: RequestId, valid: bool) -> FeedbackResult {
        let Some(recent) = self.recent.get_mut(&id) else {
            self.ignored_feedback += 1;
            return FeedbackResult::Unknown;
        };
        let previous = recent.recorded.replace(valid);
        let (tenant, model) = (recent.tenant.clone(), recent.model.clone());
        let (provider, at, probe) = (recent.provider, recent.at, recent.probe);
        let key = KeyRef {
            tenant: tenant.as_ref(),
            model: &model,
        };
        let rule = self.rule;
        let change = match previous {
            Some(old) if old == valid => None,
            Some(old) => self.touch(now, key, provider).correct(now, at, old, &rule),
            None => self
                .touch(now, key, provider)
                .record(now, at, valid, probe, &rule),
        };
        self.count(change);
        FeedbackResult::Applied
    }

    /// The keys of `provider` with anything to say, sorted by tenant and model.
    pub(crate) fn snapshot(&self, now: Time, provider: ProviderId) -> Vec<ValidityStats> {
        let mut out: Vec<ValidityStats> = self
            .entries
            .values()
            .filter_map(|e| {
                let k = &e.providers[provider.0];
                if k.window.len() == 0 && k.status == Status::Ok {
                    return None;
                }
                Some(ValidityStats {
                    tenant: e.tenant.clone(),
                    model: e.model.clone(),
                    pass_rate: k.window.pass_rate(),
                    samples: k.window.len(),
                    state: match (self.classify, k.admission(now)) {
                        (_, Admission::Yes) | (false, _) => super::KeyStatus::Ok,
                        (true, Admission::Probe) => super::KeyStatus::Probing,
                        (true, Admission::Excluded { .. }) => match k.status {
                            Status::Out { passes, .. } if passes > 0 => super::KeyStatus::Probing,
                            _ => super::KeyStatus::Excluded,
                        },
                    },
                    since: now - k.since,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.tenant, &a.model).cmp(&(&b.tenant, &b.model)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn classifier(max_keys: u32, feedback_ids: u32) -> Classifier {
        let config = ValidityConfig {
            max_keys,
            feedback_ids,
            ..ValidityConfig::default()
        };
        Classifier::new(&config, 3)
    }

    fn key<'a>(tenant: &'a Arc<str>, model: &'a Arc<str>) -> KeyRef<'a> {
        KeyRef {
            tenant: Some(tenant),
            model,
        }
    }

    #[test]
    fn a_failing_key_is_skipped_only_for_its_tenant_and_model() {
        let mut c = classifier(100, 100);
        let (a, b, m, m2): (Arc<str>, Arc<str>, Arc<str>, Arc<str>) =
            ("a".into(), "b".into(), "m".into(), "m2".into());
        let p = ProviderId(1);
        for i in 0..20 {
            let t = Time::from_millis(i);
            c.record(t, t, key(&a, &m), p, false, false);
            c.record(t, t, key(&b, &m), p, true, false);
        }
        let now = Time::from_millis(100);
        assert!(matches!(
            c.admission(now, key(&a, &m), p),
            Admission::Excluded { .. }
        ));
        assert_eq!(c.admission(now, key(&a, &m), ProviderId(0)), Admission::Yes);
        assert_eq!(c.admission(now, key(&b, &m), p), Admission::Yes);
        assert_eq!(c.admission(now, key(&a, &m2), p), Admission::Yes);
        let stats = c.snapshot(now, p);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].state, super::super::KeyStatus::Excluded);
        assert_eq!(stats[0].pass_rate, Some(0.0));
        assert_eq!(stats[1].state, super::super::KeyStatus::Ok);
    }

    #[test]
    fn reports_apply_by_id_and_unknown_ids_are_counted() {
        let mut c = classifier(100, 2);
        let (a, m): (Arc<str>, Arc<str>) = ("a".into(), "m".into());
        for i in 0..3 {
            c.remember(
                RequestId(i),
                key(&a, &m),
                ProviderId(0),
                Time::from_millis(i),
                None,
                false,
            );
        }
        // Only the last two are remembered.
        assert_eq!(
            c.feedback(Time::from_millis(5), RequestId(0), false),
            FeedbackResult::Unknown
        );
        assert_eq!(
            c.feedback(Time::from_millis(5), RequestId(2), false),
            FeedbackResult::Applied
        );
        assert_eq!(c.ignored_feedback, 1);
        let stats = c.snapshot(Time::from_millis(5), ProviderId(0));
        assert_eq!((stats[0].samples, stats[0].pass_rate), (1, Some(0.0)));
        // A second report on the same answer corrects it rather than counting twice.
        c.feedback(Time::from_millis(6), RequestId(2), true);
        let stats = c.snapshot(Time::from_millis(6), ProviderId(0));
        assert_eq!((stats[0].samples, stats[0].pass_rate), (1, Some(1.0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4))]
        #[test]
        fn memory_is_bounded_under_100_000_tenants(max_keys in 1u32..2_000, seed in any::<u64>()) {
            let mut c = classifier(max_keys, 1_000);
            let model: Arc<str> = "m".into();
            let mut rng = crate::rng::Rng::new(seed);
            for i in 0..100_000u64 {
                let tenant: Arc<str> = format!("tenant-{i}").into();
                let now = Time::ZERO + Duration::from_millis(i);
                let k = key(&tenant, &model);
                c.record(now, now, k, ProviderId((i % 3) as usize), rng.below(2) == 0, false);
                c.remember(RequestId(i), k, ProviderId(0), now, Some(true), false);
                prop_assert!(c.entries.len() <= max_keys as usize);
                prop_assert_eq!(c.lru.len(), c.entries.len());
            }
            prop_assert!(c.recent.len() <= 1_000 && c.recent_order.len() <= 1_000);
            let out = c.entries.values().flat_map(|e| &e.providers).filter(|k| k.status != Status::Ok).count();
            prop_assert_eq!(out, c.out);
        }
    }
}
