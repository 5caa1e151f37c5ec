//! `weighted`: nginx's smooth weighted round-robin.
//!
//! Every choice adds each candidate's weight to its running score, picks the highest score, and
//! takes the candidates' total weight off the winner. Over any run of choices among the same
//! candidates each is picked in proportion to its weight, and picks are spread out (weights 5,1,1
//! give `a a b a c a a`, not `a a a a a b c`). A failover asks again without the providers
//! already tried, so it falls through "by the same rotation". A provider of weight 0 is chosen
//! only when every candidate has weight 0 (a last resort).

use crate::ids::ProviderId;

/// The rotation's running scores, one per provider.
#[derive(Debug)]
pub(crate) struct Weighted {
    weights: Vec<i64>,
    scores: Vec<i64>,
}

impl Weighted {
    pub(crate) fn new(weights: &[u32]) -> Self {
        Weighted {
            weights: weights.iter().map(|&w| i64::from(w)).collect(),
            scores: vec![0; weights.len()],
        }
    }

    pub(crate) fn choose(&mut self, candidates: &[ProviderId]) -> ProviderId {
        let mut total = 0i64;
        let mut best: Option<ProviderId> = None;
        for &p in candidates {
            let weight = self.weights[p.0];
            if weight == 0 {
                continue;
            }
            total += weight;
            self.scores[p.0] += weight;
            if best.is_none_or(|b| self.scores[p.0] > self.scores[b.0]) {
                best = Some(p);
            }
        }
        let Some(best) = best else {
            // Only weight-0 providers are left: the first of them, as a last resort.
            return candidates[0];
        };
        self.scores[best.0] -= total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize) -> Vec<ProviderId> {
        (0..n).map(ProviderId).collect()
    }

    #[test]
    fn picks_are_proportional_and_spread_out() {
        let mut w = Weighted::new(&[5, 1, 1]);
        let picks: Vec<usize> = (0..7).map(|_| w.choose(&all(3)).0).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        let mut w = Weighted::new(&[3, 2, 0, 5]);
        let mut counts = [0usize; 4];
        for _ in 0..10_000 {
            counts[w.choose(&all(4)).0] += 1;
        }
        assert_eq!(counts, [3000, 2000, 0, 5000]);
    }

    #[test]
    fn weight_zero_is_only_a_last_resort() {
        let mut w = Weighted::new(&[0, 0, 4]);
        assert_eq!(w.choose(&all(3)), ProviderId(2));
        assert_eq!(w.choose(&[ProviderId(0), ProviderId(1)]), ProviderId(0));
    }

    #[test]
    fn a_failover_continues_the_rotation_without_the_tried() {
        let mut w = Weighted::new(&[1, 1, 1]);
        assert_eq!(w.choose(&all(3)), ProviderId(0));
        // p1 failed it over: the next candidates exclude p0 and p1.
        assert_eq!(w.choose(&[ProviderId(1), ProviderId(2)]), ProviderId(1));
        assert_eq!(w.choose(&[ProviderId(2)]), ProviderId(2));
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[w.choose(&all(3)).0] += 1;
        }
        assert!(
            counts.iter().all(|&c| (990..=1010).contains(&c)),
            "{counts:?}"
        );
    }
}
