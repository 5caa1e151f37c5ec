//! Hedged policy: legs at once, legs after a delay, a leg failing softly or hard.

use super::*;
use crate::server::{Step, reply_text};

fn hedged(server: &MockServer, names: &[&str], k: u64, delay_ms: u64) -> Value {
    let mut cfg = providers(server, names);
    cfg["policy"] = json!("hedged");
    cfg["hedge_k"] = json!(k);
    cfg["hedge_delay_ms"] = json!(delay_ms);
    cfg
}

/// k=2, delay 0: both providers receive the request at once; the first success wins and the
/// slow loser's connection is closed.
pub async fn hedged_delay_zero_both_receive_loser_disconnected<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(SLOW)]);
    // b answers after a short delay so a's request has surely arrived before it is cancelled.
    server.script("b", vec![Step::ok().delay(HEAD_START)]);
    let d = D::build(config(hedged(&server, &["a", "b"], 2, 0)), None);
    let start = Instant::now();
    let routed = d.call(request("race")).await.expect("served");
    assert!(start.elapsed() < SLOW);
    assert_eq!(&*routed.provider_name, "b");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::Cancelled), success("b")]
    );
    assert_eq!(completion_text(&routed), reply_text("b"));
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    assert_eq!(user_text(&server.received("a")[0]), "race");
    assert_eq!(user_text(&server.received("b")[0]), "race");
    assert_disconnected(&server, "a", 0).await;
    assert_outcome(&server, "b", 0, Outcome::Completed).await;
    settled(&d).await;
}

/// A hedge delay longer than the first provider's answer: the second provider never hears of it.
pub async fn delayed_hedge_not_fired_when_first_is_fast<D: Driver>() {
    let server = MockServer::start().await;
    let d = D::build(config(hedged(&server, &["a", "b"], 2, 500)), None);
    let start = Instant::now();
    let routed = d.call(request("fast")).await.expect("served");
    assert_eq!(outcomes(&routed.attempts), vec![success("a")]);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a was slower than the hedge delay"
    );
    // Past the hedge delay: the hedge timer must have died with the request.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_counts(&server, &[("a", 1), ("b", 0)]);
    settled(&d).await;
}

/// The first provider is slower than the hedge delay: the second receives exactly one request,
/// no earlier than the delay, and wins; the first is disconnected.
pub async fn delayed_hedge_fires_when_first_is_slow<D: Driver>() {
    let server = MockServer::start().await;
    server.script("a", vec![Step::ok().delay(SLOW)]);
    let d = D::build(config(hedged(&server, &["a", "b"], 2, 100)), None);
    let routed = d.call(request("slow first")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![("a".into(), AttemptOutcome::Cancelled), success("b")]
    );
    assert_counts(&server, &[("a", 1), ("b", 1)]);
    // On the router's clock: a was cancelled the moment b won, so a's time minus b's is when b
    // was sent after a (the server's arrival times also carry each leg's way there, which a
    // loaded machine stretches unevenly).
    let hedge_after = routed.attempts[0]
        .latency
        .saturating_sub(routed.attempts[1].latency);
    assert!(
        hedge_after >= Duration::from_millis(100),
        "the hedge went {hedge_after:?} after the first leg"
    );
    assert_disconnected(&server, "a", 0).await;
    settled(&d).await;
}

/// k=2 of three: a leg that fails softly starts the next untried provider, whose success
/// cancels the leg still running.
pub async fn hedged_soft_failure_starts_the_next_untried<D: Driver>() {
    let server = MockServer::start().await;
    // a fails after a short delay so b's request has surely arrived before it is cancelled.
    server.script("a", vec![Step::status(500).delay(HEAD_START)]);
    server.script("b", vec![Step::ok().delay(SLOW)]);
    let d = D::build(config(hedged(&server, &["a", "b", "c"], 2, 0)), None);
    let routed = d.call(request("three")).await.expect("served");
    assert_eq!(
        outcomes(&routed.attempts),
        vec![
            ("a".into(), AttemptOutcome::SoftStatus { status: 500 }),
            ("b".into(), AttemptOutcome::Cancelled),
            success("c"),
        ]
    );
    assert_eq!(completion_text(&routed), reply_text("c"));
    assert_counts(&server, &[("a", 1), ("b", 1), ("c", 1)]);
    assert_disconnected(&server, "b", 0).await;
    settled(&d).await;
}

/// A hard failure of one leg ends the request: the other leg is cancelled and no third
/// provider is tried.
pub async fn hedged_hard_failure_cancels_the_other_leg<D: Driver>() {
    let server = MockServer::start().await;
    // a fails after a short delay so b's request has surely arrived before it is cancelled.
    server.script("a", vec![Step::status(400).delay(HEAD_START)]);
    server.script("b", vec![Step::ok().delay(SLOW)]);
    let d = D::build(config(hedged(&server, &["a", "b", "c"], 2, 0)), None);
    let err = d.call(request("hard")).await.unwrap_err();
    let RouteError::HardFailure {
        provider, status, ..
    } = &err
    else {
        panic!("expected a hard failure, got {err:?}");
    };
    assert_eq!((&**provider, *status), ("a", 400));
    assert_eq!(
        outcomes(err.attempts()),
        vec![
            ("a".into(), AttemptOutcome::HardStatus { status: 400 }),
            ("b".into(), AttemptOutcome::Cancelled),
        ]
    );
    assert_disconnected(&server, "b", 0).await;
    settled(&d).await;
    assert_counts(&server, &[("a", 1), ("b", 1), ("c", 0)]);
}
