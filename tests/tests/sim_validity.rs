//! The validity scenario's targets (see `f3dx_router_testkit::sim_validity`): with the
//! classifier on, tenant A's traffic leaves the degraded provider within one window of the
//! degradation starting and comes back after it recovers; tenant B is unaffected; off, A keeps
//! sending a third of its traffic there. Prints the README table (`--nocapture`).

use f3dx_router_testkit::sim_validity::{BUCKET, DEGRADED_FROM, DEGRADED_UNTIL, run, table};

const SEED: u64 = 12;

fn bucket_of(t: std::time::Duration) -> usize {
    (t.as_secs() / BUCKET.as_secs()) as usize
}

#[test]
fn the_classifier_moves_tenant_a_off_the_degraded_provider_and_back() {
    println!("{}", table(SEED));
    let (off, on) = (run(SEED, false), run(SEED, true));
    let (start, end) = (bucket_of(DEGRADED_FROM), bucket_of(DEGRADED_UNTIL));
    // Off: a third of A's traffic stays on p1 and about 40 % of that is invalid.
    for b in &off[start..end] {
        assert!((0.25..0.42).contains(&b[0].degraded_share()), "{b:?}");
        assert!(b[0].invalid_rate() > 0.05, "{b:?}");
    }
    // On: one window (50 outcomes of A on p1, about 15 s at 3.3 a second) after the start,
    // under 5 % of A's traffic goes to p1, in total over the rest of the degradation.
    let after_window = start + 2;
    let (sent, on_p1) = on[after_window..end].iter().fold((0, 0), |(s, d), b| {
        (s + b[0].requests, d + b[0].on_degraded)
    });
    let share = on_p1 as f64 / sent as f64;
    assert!(share < 0.05, "A's share on p1 after one window: {share}");
    // Back in rotation after it recovers (probe_ms 30 s + 3 answers): within 40 s.
    for b in &on[end + 4..] {
        assert!(b[0].degraded_share() > 0.25, "p1 back for A: {b:?}");
    }
    // Tenant B is unaffected throughout.
    for (f, n) in off.iter().zip(&on) {
        assert!((0.25..0.42).contains(&n[1].degraded_share()), "{n:?}");
        assert_eq!(n[1].invalid, 0);
        assert_eq!(f[1].requests, n[1].requests);
    }
    // Same seed, same run.
    assert_eq!(run(SEED, true), on);
}
