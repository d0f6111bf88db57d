//! Dropout masks from counter-based random numbers.

use rayon::prelude::*;

use crate::wide_fn;

/// Dropout's random numbers: element `index` of a site (a place in the network, or one
/// attention square) is kept when a 32-bit hash of the site's key and the index falls below
/// `keep · 2³²`. Counter-based, so the backward pass regenerates a mask instead of storing
/// it, any thread can compute any element, and 32-bit arithmetic keeps it vectorised.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    seed: u64,
    threshold: u32,
    /// `1 / keep`: kept elements are scaled so the expectation is unchanged (as burn's).
    pub scale: f32,
}

impl Dropout {
    /// `None` when nothing is dropped (rate 0 or inference).
    pub fn new(rate: f64, seed: Option<u64>) -> Option<Self> {
        let seed = seed?;
        if rate <= 0.0 {
            return None;
        }
        let keep = 1.0 - rate;
        Some(Self {
            seed,
            threshold: (keep * 4_294_967_296.0).min(u32::MAX as f64) as u32,
            scale: (1.0 / keep) as f32,
        })
    }

    /// The site numbered `site` (layer and place; attention squares add their own offset).
    pub fn site(&self, site: u64) -> Site {
        let key = mix(self.seed ^ mix(site.wrapping_add(0xD6E8_FEB8_6659_FD93)));
        Site {
            key: (key ^ (key >> 32)) as u32,
            threshold: self.threshold,
            scale: self.scale,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Site {
    key: u32,
    threshold: u32,
    pub scale: f32,
}

impl Site {
    /// A site of its own for sub-block `block` of this one (one attention square).
    pub fn sub(&self, block: u64) -> Site {
        let key = mix((self.key as u64) << 32 ^ block);
        Site {
            key: (key ^ (key >> 32)) as u32,
            ..*self
        }
    }

    /// The multiplier of element `index` (< 2³²): `1/keep` or 0.
    #[inline(always)]
    pub fn factor(&self, index: u32) -> f32 {
        if fmix32(self.key ^ index.wrapping_mul(0x9E37_79B9)) < self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// Multiply `x` (elements `0..x.len()` of the site) by its mask.
    pub fn apply(&self, x: &mut [f32]) {
        assert!(
            x.len() <= u32::MAX as usize,
            "dropout site over 2^32 elements"
        );
        x.par_chunks_mut(4096)
            .enumerate()
            .for_each(|(c, xs)| dropout_chunk(*self, xs, (c * 4096) as u32));
    }
}

wide_fn! {
    fn dropout_chunk(site: Site, x: &mut [f32], first: u32) {
        for (i, v) in x.iter_mut().enumerate() {
            *v *= site.factor(first + i as u32);
        }
    }
}

/// MurmurHash3's 32-bit finaliser.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// SplitMix64's finaliser.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
