//! Causal multi-head attention of one sequence, forward and backward, visiting only the
//! `j ≤ i` half of the score matrix. Inputs are the fused projection rows `[T, 3d]`
//! (query | key | value, heads side by side within each), as `AdModel`'s `attn.qkv` gives.

use super::ops::Site;

/// Sizes shared by the forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub d: usize,
    pub heads: usize,
}

impl Shape {
    fn dh(&self) -> usize {
        self.d / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dh() as f32).sqrt()
    }
}

/// Attention probabilities of a sequence of `t` tokens: `heads · t²` entries (row `i` of
/// head `h` at `(h·t + i)·t`, entries `j ≤ i` used).
pub(crate) fn probs_len(heads: usize, t: usize) -> usize {
    heads * t * t
}

/// `ctx [T, d]` = per head `dropout(softmax(q kᵀ/√dh + causal)) v`; `p` receives the
/// softmax before dropout. `drop` with the index of this sequence's first probability.
pub(crate) fn forward(
    s: Shape,
    qkv: &[f32],
    ctx: &mut [f32],
    p: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.dh(), s.scale());
    let t = qkv.len() / (3 * d);
    let mut kt = vec![0.0f32; dh * t];
    let mut acc = vec![0.0f32; dh];
    for h in 0..s.heads {
        for j in 0..t {
            let k = &qkv[j * 3 * d + d + h * dh..][..dh];
            for e in 0..dh {
                kt[e * t + j] = k[e];
            }
        }
        for i in 0..t {
            let base = (h * t + i) * t;
            let row = &mut p[base..base + i + 1];
            row.fill(0.0);
            let q = &qkv[i * 3 * d + h * dh..][..dh];
            for e in 0..dh {
                let qe = q[e] * scale;
                let ke = &kt[e * t..e * t + i + 1];
                row.iter_mut().zip(ke).for_each(|(r, k)| *r += qe * k);
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for r in row.iter_mut() {
                *r = (*r - max).exp();
                sum += *r;
            }
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|r| *r *= inv);
            acc.fill(0.0);
            for (j, &pj) in row.iter().enumerate() {
                let w = match drop {
                    Some((site, first)) => pj * site.factor(first + (base + j) as u64),
                    None => pj,
                };
                if w != 0.0 {
                    let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                    acc.iter_mut().zip(v).for_each(|(a, v)| *a += w * v);
                }
            }
            ctx[i * d + h * dh..][..dh].copy_from_slice(&acc);
        }
    }
}

/// Backward of [`forward`]: `dqkv [T, 3d]` (overwritten) from `dctx [T, d]`.
pub(crate) fn backward(
    s: Shape,
    qkv: &[f32],
    p: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
    drop: Option<(Site, u64)>,
) {
    let (d, dh, scale) = (s.d, s.dh(), s.scale());
    let t = qkv.len() / (3 * d);
    dqkv.fill(0.0);
    let mut vt = vec![0.0f32; dh * t];
    let mut dp = vec![0.0f32; t];
    let mut factor = vec![1.0f32; t];
    let mut dq = vec![0.0f32; dh];
    for h in 0..s.heads {
        for j in 0..t {
            let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
            for e in 0..dh {
                vt[e * t + j] = v[e];
            }
        }
        for i in 0..t {
            let base = (h * t + i) * t;
            let row = &p[base..base + i + 1];
            let go = &dctx[i * d + h * dh..][..dh];
            // d(dropped prob)_j = go · v_j
            let dpi = &mut dp[..i + 1];
            dpi.fill(0.0);
            for e in 0..dh {
                let g = go[e];
                let ve = &vt[e * t..e * t + i + 1];
                dpi.iter_mut().zip(ve).for_each(|(a, v)| *a += g * v);
            }
            let fi = &mut factor[..i + 1];
            if let Some((site, first)) = drop {
                for (j, f) in fi.iter_mut().enumerate() {
                    *f = site.factor(first + (base + j) as u64);
                }
            }
            // dv_j += (p_ij · factor_ij) go
            for j in 0..=i {
                let w = row[j] * fi[j];
                if w != 0.0 {
                    let dv = &mut dqkv[j * 3 * d + 2 * d + h * dh..][..dh];
                    dv.iter_mut().zip(go).for_each(|(a, g)| *a += w * g);
                }
            }
            // Softmax backward on the undropped probabilities.
            let mut dot = 0.0f32;
            for j in 0..=i {
                dpi[j] *= fi[j];
                dot += row[j] * dpi[j];
            }
            let q = &qkv[i * 3 * d + h * dh..][..dh];
            dq.fill(0.0);
            for j in 0..=i {
                let ds = row[j] * (dpi[j] - dot) * scale;
                if ds != 0.0 {
                    let k = &qkv[j * 3 * d + d + h * dh..][..dh];
                    dq.iter_mut().zip(k).for_each(|(a, k)| *a += ds * k);
                    let dk = &mut dqkv[j * 3 * d + d + h * dh..][..dh];
                    dk.iter_mut().zip(q).for_each(|(a, q)| *a += ds * q);
                }
            }
            dqkv[i * 3 * d + h * dh..][..dh].copy_from_slice(&dq);
        }
    }
}
