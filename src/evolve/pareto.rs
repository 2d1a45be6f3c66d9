//! Pareto fronts for evolving more than one objective (NSGA-II's two tools): non-dominated sorting ranks
//! points into fronts, and the crowding distance prefers points in sparse parts of a front. Every objective
//! is maximised (negate one to minimise it: parameters, latency). Points with a NaN objective are dominated
//! by every point without one.

use std::cmp::Ordering;

/// Whether `a` dominates `b`: at least as good in every objective and better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let (mut better, mut worse) = (false, false);
    for (&x, &y) in a.iter().zip(b) {
        match key(x).partial_cmp(&key(y)) {
            Some(Ordering::Greater) => better = true,
            Some(Ordering::Less) => worse = true,
            _ => {}
        }
    }
    better && !worse
}

/// The front of every point: 0 for the non-dominated ones, 1 for those dominated only by front 0, ...
pub fn fronts(points: &[Vec<f64>]) -> Vec<usize> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![vec![]; n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(&points[i], &points[j]) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            }
        }
    }
    let mut rank = vec![usize::MAX; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut r = 0;
    while !current.is_empty() {
        let mut next = vec![];
        for &i in &current {
            rank[i] = r;
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        current = next;
        r += 1;
    }
    rank
}

/// NSGA-II's crowding distance of each point within its front (the points given are one front): per
/// objective, the span between the neighbours on either side divided by the objective's range; the ends of
/// each objective get infinity.
pub fn crowding_distance(front: &[Vec<f64>]) -> Vec<f64> {
    let n = front.len();
    let mut d = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let objective = |k: usize| -> Vec<f64> { front.iter().map(|p| p[k]).collect() };
    for values in (0..front[0].len()).map(objective) {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let (lo, hi) = (values[idx[0]], values[idx[n - 1]]);
        d[idx[0]] = f64::INFINITY;
        d[idx[n - 1]] = f64::INFINITY;
        let range = hi - lo;
        if range.is_nan() || range <= 0.0 {
            continue;
        }
        for w in 1..n - 1 {
            d[idx[w]] += (values[idx[w + 1]] - values[idx[w - 1]]) / range;
        }
    }
    d
}

/// NSGA-II's order of the points: by front, then by crowding distance (larger first); the first ones are
/// the parents a multi-objective GA picks.
pub fn nsga2_order(points: &[Vec<f64>]) -> Vec<usize> {
    let rank = fronts(points);
    let mut crowd = vec![0.0; points.len()];
    for r in 0..=rank.iter().copied().filter(|&r| r != usize::MAX).max().unwrap_or(0) {
        let members: Vec<usize> = (0..points.len()).filter(|&i| rank[i] == r).collect();
        let pts: Vec<Vec<f64>> = members.iter().map(|&i| points[i].clone()).collect();
        for (&i, c) in members.iter().zip(crowding_distance(&pts)) {
            crowd[i] = c;
        }
    }
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| rank[a].cmp(&rank[b]).then(crowd[b].total_cmp(&crowd[a])));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made table of (fitness, images/s): A (0.5, 10), B (0.4, 20), C (0.3, 30), D (0.35, 15),
    /// E (0.2, 12), F (0.45, 5), G (NaN, 40).
    fn table() -> Vec<Vec<f64>> {
        vec![
            vec![0.5, 10.0],
            vec![0.4, 20.0],
            vec![0.3, 30.0],
            vec![0.35, 15.0],
            vec![0.2, 12.0],
            vec![0.45, 5.0],
            vec![f64::NAN, 40.0],
        ]
    }

    #[test]
    fn fronts_of_a_hand_made_table() {
        // A, B, C are non-dominated; D is dominated by B only; F by A only; E by B, C and D; G (NaN fitness)
        // is dominated by nothing that is faster, so it stays on the first front through its speed
        let r = fronts(&table());
        assert_eq!(r, [0, 0, 0, 1, 2, 1, 0]);
        assert!(dominates(&[0.4, 20.0], &[0.35, 15.0]));
        assert!(!dominates(&[0.4, 20.0], &[0.4, 20.0]), "equal points do not dominate");
        assert!(dominates(&[0.1, 1.0], &[f64::NAN, 1.0]), "NaN counts as worst");
    }

    #[test]
    fn crowding_distance_of_a_hand_made_front() {
        // front (fitness, images/s): A (0.5, 10), B (0.4, 20), C (0.3, 30), H (0.45, 15)
        let front = vec![vec![0.5, 10.0], vec![0.4, 20.0], vec![0.3, 30.0], vec![0.45, 15.0]];
        let d = crowding_distance(&front);
        // fitness range 0.2, speed range 20; B: (0.45 - 0.3) / 0.2 + (30 - 15) / 20 = 0.75 + 0.75 = 1.5
        // H: (0.5 - 0.4) / 0.2 + (20 - 10) / 20 = 0.5 + 0.5 = 1.0; A and C are ends
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[2], f64::INFINITY);
        assert!((d[1] - 1.5).abs() < 1e-12, "{d:?}");
        assert!((d[3] - 1.0).abs() < 1e-12, "{d:?}");
        assert_eq!(crowding_distance(&front[..2]), [f64::INFINITY, f64::INFINITY]);
    }

    #[test]
    fn nsga2_orders_by_front_then_crowding() {
        let order = nsga2_order(&table());
        // front 0: A, B, C, G; within it the ends of an objective (C/G fastest..., A best fitness) come first
        let first: std::collections::BTreeSet<usize> = order[..4].iter().copied().collect();
        assert_eq!(first, [0, 1, 2, 6].into());
        assert_eq!(&order[4..6].iter().copied().collect::<std::collections::BTreeSet<_>>(), &[3, 5].into());
        assert_eq!(order[6], 4);
    }
}
