//! The policies that learn, over real HTTP: weighted shares, a configured `rpm` against a burst,
//! a budget learned from a provider's own rate-limit headers, and the circuit breaker. The
//! server's counts are the judge: what it received is what the router sent.

use super::*;
use crate::server::Step;
use f3dx_router_core::BreakerStats;
use std::sync::Arc;

/// 200 sequential calls over weights 3, 1 and 0: the server sees exactly 150 and 50 (smooth
/// weighted round-robin is exact over whole rounds), and the weight-0 provider nothing.
pub async fn weighted_shares_over_200_calls<D: Driver>() {
    let server = MockServer::start().await;
    let cfg = json!({
        "policy": "weighted",
        "providers": [
            with(openai("a", server.base_url("a")), json!({"weight": 3})),
            with(openai("b", server.base_url("b")), json!({"weight": 1})),
            with(openai("c", server.base_url("c")), json!({"weight": 0})),
        ],
    });
    let d = D::build(config(cfg), None);
    for i in 0..200 {
        d.call(request(&format!("weighted {i}")))
            .await
            .expect("served");
    }
    assert_counts(&server, &[("a", 150), ("b", 50), ("c", 0)]);
    let stats = d.stats();
    let requests: Vec<(&str, u64)> = stats.iter().map(|s| (&*s.name, s.requests)).collect();
    assert_eq!(requests, [("a", 150), ("b", 50), ("c", 0)]);
    settled(&d).await;
}

/// `rpm: 6` with `burst: 3` (one request per 10 s after the burst) against 20 requests at once:
/// the server sees `a` receive the burst and nothing more (plus one per 10 s the burst took,
/// which on any sane machine is none); every other request goes to `b` without touching `a`.
pub async fn rpm_holds_against_a_burst<D: Driver>() {
    const N: usize = 20;
    let server = MockServer::start().await;
    let cfg = json!({"providers": [
        with(openai("a", server.base_url("a")), json!({"rpm": 6, "burst": 3})),
        openai("b", server.base_url("b")),
    ]});
    let d = Arc::new(D::build(config(cfg), None));
    let start = Instant::now();
    let calls: Vec<_> = (0..N)
        .map(|i| d.call(request(&format!("burst {i}"))))
        .collect();
    let routed = futures_util::future::join_all(calls).await;
    let elapsed = start.elapsed();
    for r in &routed {
        let r = r.as_ref().expect("served");
        assert_eq!(r.attempts.len(), 1, "a spent budget is skipped, not tried");
    }
    let to_a = server.received("a").len();
    let admitted = 3 + usize::try_from(elapsed.as_secs() / 10).unwrap_or(usize::MAX);
    assert!(
        (3..=admitted).contains(&to_a),
        "a received {to_a}, its budget admits {admitted} in {elapsed:?}"
    );
    assert_eq!(server.received("b").len(), N - to_a);
    // Nothing left until the bucket refills; the stats say when.
    let budget = d.stats()[0].budget;
    if to_a == 3 {
        assert_eq!(budget.requests_remaining, Some(0));
        assert!(budget.resets_in.is_some() && !budget.learned);
    }
    settled(&*d).await;
}

/// With one provider and no budget for the next request before its deadline, the request fails
/// at once with `RateLimited` carrying when the budget returns; the server sees one request.
pub async fn out_of_budget_everywhere_is_rate_limited<D: Driver>() {
    let server = MockServer::start().await;
    let mut cfg = json!({"providers": [
        with(openai("a", server.base_url("a")), json!({"rpm": 1, "burst": 1})),
    ]});
    cfg["deadline_ms"] = json!(1000);
    let d = D::build(config(cfg), None);
    d.call(request("first"))
        .await
        .expect("the burst admits one");
    let err = d.call(request("second")).await.unwrap_err();
    let RouteError::RateLimited {
        retry_after,
        attempts,
    } = &err
    else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(attempts.is_empty(), "nothing was sent: {attempts:?}");
    assert!(
        *retry_after > Duration::from_secs(50) && *retry_after <= Duration::from_secs(60),
        "the next admission is a minute after the first send: {retry_after:?}"
    );
    assert_counts(&server, &[("a", 1)]);
    settled(&d).await;
}

/// `a` says with OpenAI's headers how many requests it has left (2, 1, 0, reset in a minute);
/// its fourth scripted answer is a 429 that must never be asked for: the router stops sending to
/// `a` when its own count says nothing is left, and `b` serves the rest.
pub async fn learned_budget_stops_sends_before_the_429<D: Driver>() {
    let server = MockServer::start().await;
    let left = |n: u32| {
        Step::ok()
            .header("x-ratelimit-limit-requests", "5000")
            .header("x-ratelimit-remaining-requests", n.to_string())
            .header("x-ratelimit-reset-requests", "1m0s")
            .header("x-ratelimit-limit-tokens", "160000")
            .header("x-ratelimit-remaining-tokens", "159976")
            .header("x-ratelimit-reset-tokens", "9ms")
    };
    server.script(
        "a",
        vec![
            left(2),
            left(1),
            left(0),
            Step::status(429).retry_after("20"),
        ],
    );
    let d = D::build(config(providers(&server, &["a", "b"])), None);
    for i in 0..3 {
        let routed = d
            .call(request(&format!("learn {i}")))
            .await
            .expect("served");
        assert_eq!(outcomes(&routed.attempts), vec![success("a")], "call {i}");
    }
    let routed = d.call(request("after")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![success("b")],
        "a said it had nothing left: not even attempted"
    );
    assert_counts(&server, &[("a", 3), ("b", 1)]);
    assert_eq!(server.pending_steps("a"), 1, "the 429 was never sent");
    let budget = d.stats()[0].budget;
    assert!(budget.learned);
    assert_eq!(budget.requests_remaining, Some(0));
    assert_eq!(d.stats()[0].unparsable_headers, 0);
    settled(&d).await;
}

/// Three 503s in a row open `a`'s breaker (`consecutive_failures: 3`): the next requests go to
/// `b` without `a` seeing them; after `open_ms` the breaker is half-open, one request probes `a`,
/// its success closes the breaker and `a` is first again.
pub async fn breaker_opens_after_503s_and_probes<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::status(503); 3]);
    let mut cfg = providers(&server, &["a", "b"]);
    cfg["health"] = json!({"consecutive_failures": 3, "open_ms": 3000});
    let d = D::build(config(cfg), None);
    for i in 0..3 {
        let routed = d.call(request(&format!("fail {i}"))).await.expect("served");
        assert_eq!(
            outcomes(&routed.attempts),
            vec![
                ("a".into(), AttemptOutcome::SoftStatus { status: 503 }),
                success("b")
            ]
        );
    }
    let a = &d.stats()[0];
    assert!(matches!(a.breaker, BreakerStats::Open { .. }), "{a:?}");
    assert_eq!((a.requests, a.soft_failures), (3, 3));
    for i in 0..2 {
        let routed = d.call(request(&format!("open {i}"))).await.expect("served");
        assert_eq!(outcomes(&routed.attempts), vec![success("b")], "a is open");
    }
    assert_counts(&server, &[("a", 3), ("b", 5)]);
    // Half-open once open_ms has passed (read from the stats, not slept out).
    let start = Instant::now();
    while d.stats()[0].breaker != BreakerStats::HalfOpen {
        assert!(start.elapsed() < SCENARIO_LIMIT / 2, "never half-open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed = d.call(request("probe")).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")], "the probe");
    assert_eq!(d.stats()[0].breaker, BreakerStats::Closed);
    let routed = d.call(request("closed")).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert_counts(&server, &[("a", 5), ("b", 5)]);
    settled(&d).await;
}
