//! Seeding. Every random stream is a ChaCha8 generator keyed by (seed, stream id), so each
//! learner, environment and sampler has its own reproducible sequence regardless of thread order.

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng as Rng;

/// Generator `stream` of `seed`.
pub fn rng(seed: u64, stream: u64) -> Rng {
    let mut r = Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(rng(1, 0), |r, _| Some(r.next_u32()))
            .collect();
        let b: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(rng(1, 0), |r, _| Some(r.next_u32()))
            .collect();
        let c: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(rng(1, 1), |r, _| Some(r.next_u32()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
