//! The learners' networks: separate actor and critic MLPs (`obs → hidden → hidden → out`, tanh),
//! every learner's parameters in one flat `Vec<f32>` with a fixed [`Layout`], orthogonal
//! initialisation as stable-baselines3 does it, and a plain-Rust forward/backward (the fast path;
//! `burn_learners` computes the same on burn and a test compares the two).

use rand::Rng as _;

use ccad_core::seed::Rng;

use ccad_core::kernels::matmul::small::{mm, mm_tn, transpose};

/// One MLP `dims[0] → dims[1] → dims[2] → dims[3]` inside a flat parameter vector. Layer `l`
/// has a weight `[dims[l], dims[l+1]]` (row-major, `y = x·W + b`) followed by its bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mlp {
    pub dims: [usize; 4],
    pub offset: usize,
}

impl Mlp {
    pub fn len(&self) -> usize {
        (0..3).map(|l| (self.dims[l] + 1) * self.dims[l + 1]).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Range of layer `l`'s weight.
    pub fn w(&self, l: usize) -> std::ops::Range<usize> {
        let start = self.offset
            + (0..l)
                .map(|k| (self.dims[k] + 1) * self.dims[k + 1])
                .sum::<usize>();
        start..start + self.dims[l] * self.dims[l + 1]
    }

    /// Range of layer `l`'s bias.
    pub fn b(&self, l: usize) -> std::ops::Range<usize> {
        let end = self.w(l).end;
        end..end + self.dims[l + 1]
    }
}

/// Parameter layout of one learner: the actor (logits) first, then the critic (value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub obs_dim: usize,
    pub hidden: usize,
    pub n_actions: usize,
}

impl Layout {
    pub fn actor(&self) -> Mlp {
        Mlp {
            dims: [self.obs_dim, self.hidden, self.hidden, self.n_actions],
            offset: 0,
        }
    }

    pub fn critic(&self) -> Mlp {
        Mlp {
            dims: [self.obs_dim, self.hidden, self.hidden, 1],
            offset: self.actor().len(),
        }
    }

    /// Parameters per learner.
    pub fn len(&self) -> usize {
        self.actor().len() + self.critic().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// stable-baselines3's initialisation: orthogonal weights with gain √2 on hidden layers,
    /// 0.01 on the policy output and 1 on the value output; zero biases.
    pub fn init(&self, rng: &mut Rng) -> Vec<f32> {
        let mut p = vec![0.0; self.len()];
        let sqrt2 = std::f64::consts::SQRT_2;
        for (mlp, out_gain) in [(self.actor(), 0.01), (self.critic(), 1.0)] {
            for (l, gain) in [sqrt2, sqrt2, out_gain].into_iter().enumerate() {
                let w = orthogonal(mlp.dims[l], mlp.dims[l + 1], gain, rng);
                p[mlp.w(l)].copy_from_slice(&w);
            }
        }
        p
    }
}

/// Standard normal sample (Box–Muller) from our own generator, so initialisation depends on
/// nothing but the seed.
fn normal(rng: &mut Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A `rows × cols` matrix with orthonormal rows or columns (whichever are fewer), times `gain`:
/// the Q of a Gaussian matrix's QR decomposition (modified Gram–Schmidt), as torch's
/// `orthogonal_` draws it.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (long, short) = (rows.max(cols), rows.min(cols));
    // `short` column vectors of length `long`.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..long).map(|_| normal(rng)).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let (done, rest) = q.split_at_mut(j);
            let dot: f64 = done[k].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            for (x, y) in rest[0].iter_mut().zip(&done[k]) {
                *x -= dot * y;
            }
        }
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        q[j].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Tall: column c is q[c]; wide: row r is q[r].
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    out
}

/// tanh to within ~2e-7 (absolute), branch-free so that it vectorises: libm's scalar `tanhf`
/// took more time than the matrix products at these layer sizes.
/// `tanh|x| = (1 − e) / (1 + e)` with `e = exp(−2|x|)`; `exp(y) = 2ᵏ·exp(r)`, `|r| ≤ ln2/2`,
/// `exp(r)` by its Taylor polynomial of degree 7 (remainder < 1e-8).
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let y = -2.0 * x.abs().min(15.0); // tanh(15) is 1 in f32
    let shifted = y * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // k as an integer from the low mantissa bits of `shifted` (integer ops only, so this
    // vectorises; `as i32` on a float does not), then 2ᵏ from its exponent bits.
    let k_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let e = p * f32::from_bits(((k_int + 127) << 23) as u32);
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

#[inline(always)]
fn tanh_slice(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh_fast(*x));
}

/// [`tanh_fast`] over a slice, vectorised with AVX2/FMA where the CPU has them.
pub fn tanh_in_place(v: &mut [f32]) {
    ccad_core::kernels::simd::wide(|| tanh_slice(v));
}

/// Activations of one MLP over a batch of `n` inputs, kept for the backward pass.
#[derive(Debug, Clone, Default)]
pub struct Activations {
    pub h1: Vec<f32>,
    pub h2: Vec<f32>,
    pub out: Vec<f32>,
    // Backward scratch.
    d2: Vec<f32>,
    d1: Vec<f32>,
    tr: Vec<f32>,
}

/// `y = x·W + b` for `n` rows.
fn dense(x: &[f32], n: usize, w: &[f32], b: &[f32], din: usize, dout: usize, y: &mut Vec<f32>) {
    y.resize(n * dout, 0.0);
    for row in y.chunks_exact_mut(dout) {
        row.copy_from_slice(b);
    }
    mm(n, din, dout, x, w, y, true);
}

impl Mlp {
    /// Forward `n` inputs `x` (`[n, dims[0]]`); the output is `acts.out` (`[n, dims[3]]`).
    pub fn forward(&self, p: &[f32], x: &[f32], n: usize, acts: &mut Activations) {
        let d = self.dims;
        dense(x, n, &p[self.w(0)], &p[self.b(0)], d[0], d[1], &mut acts.h1);
        tanh_in_place(&mut acts.h1);
        dense(
            &acts.h1,
            n,
            &p[self.w(1)],
            &p[self.b(1)],
            d[1],
            d[2],
            &mut acts.h2,
        );
        tanh_in_place(&mut acts.h2);
        dense(
            &acts.h2,
            n,
            &p[self.w(2)],
            &p[self.b(2)],
            d[2],
            d[3],
            &mut acts.out,
        );
    }

    /// Gradients of a loss with respect to this MLP's parameters, given `dout = ∂loss/∂out` and
    /// the activations of the matching [`Mlp::forward`]; written (not added) into `g`.
    pub fn backward(
        &self,
        p: &[f32],
        x: &[f32],
        n: usize,
        acts: &mut Activations,
        dout: &[f32],
        g: &mut [f32],
    ) {
        let d = self.dims;
        let Activations {
            h1, h2, d2, d1, tr, ..
        } = acts;
        // Layer 3: out = h2·W3 + b3.
        self.weight_grad(h2, dout, n, 2, g, tr);
        d2.resize(n * d[2], 0.0);
        transpose(d[2], d[3], &p[self.w(2)], tr);
        mm(n, d[3], d[2], dout, tr, d2, false);
        // tanh' = 1 − tanh².
        d2.iter_mut()
            .zip(h2.iter())
            .for_each(|(g, h)| *g *= 1.0 - h * h);
        // Layer 2: h2 = tanh(h1·W2 + b2).
        self.weight_grad(h1, d2, n, 1, g, tr);
        d1.resize(n * d[1], 0.0);
        transpose(d[1], d[2], &p[self.w(1)], tr);
        mm(n, d[2], d[1], d2, tr, d1, false);
        d1.iter_mut()
            .zip(h1.iter())
            .for_each(|(g, h)| *g *= 1.0 - h * h);
        // Layer 1: h1 = tanh(x·W1 + b1).
        self.weight_grad(x, d1, n, 0, g, tr);
    }

    /// `∂W_l = inputᵀ·δ`, `∂b_l = Σ_rows δ`.
    fn weight_grad(
        &self,
        input: &[f32],
        delta: &[f32],
        n: usize,
        l: usize,
        g: &mut [f32],
        tr: &mut Vec<f32>,
    ) {
        let (din, dout) = (self.dims[l], self.dims[l + 1]);
        if dout >= 8 {
            mm_tn(din, n, dout, input, delta, &mut g[self.w(l)], false);
        } else {
            // Few outputs (logits, value): ∂Wᵀ = δᵀ·input runs wide over the inputs; then
            // transpose the small result into place.
            let mut wt = std::mem::take(tr);
            wt.resize(dout * din, 0.0);
            mm_tn(dout, n, din, delta, input, &mut wt, false);
            let gw = &mut g[self.w(l)];
            for (o, row) in wt.chunks_exact(din).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    gw[j * dout + o] = v;
                }
            }
            *tr = wt;
        }
        let gb = &mut g[self.b(l)];
        gb.fill(0.0);
        for row in delta.chunks_exact(dout) {
            gb.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        let l = Layout {
            obs_dim: 2,
            hidden: 64,
            n_actions: 5,
        };
        // actor: (2+1)·64 + (64+1)·64 + (64+1)·5 = 192 + 4160 + 325 = 4677
        // critic: 192 + 4160 + 65 = 4417
        assert_eq!(l.actor().len(), 4677);
        assert_eq!(l.critic().len(), 4417);
        assert_eq!(l.len(), 9094);
        assert_eq!(l.critic().w(0), 4677..4677 + 128);
        assert_eq!(l.actor().b(2), 4672..4677);
    }

    #[test]
    fn orthogonal_rows_or_columns_scaled_by_gain() {
        let mut rng = ccad_core::seed::rng(3, 0);
        for (r, c, gain) in [(2usize, 6usize, 2.0f64), (6, 2, 0.5), (4, 4, 1.0)] {
            let w = orthogonal(r, c, gain, &mut rng);
            // W·Wᵀ = gain²·I for wide, Wᵀ·W = gain²·I for tall.
            let (k, along) = if r <= c { (r, c) } else { (c, r) };
            for i in 0..k {
                for j in 0..k {
                    let dot: f64 = (0..along)
                        .map(|m| {
                            let (a, b) = if r <= c {
                                (w[i * c + m], w[j * c + m])
                            } else {
                                (w[m * c + i], w[m * c + j])
                            };
                            a as f64 * b as f64
                        })
                        .sum();
                    let want = if i == j { gain * gain } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{r}x{c} ({i},{j}) {dot}");
                }
            }
        }
    }

    #[test]
    fn fast_tanh_matches_libm() {
        let xs: Vec<f32> = (-20_000..=20_000)
            .map(|i| i as f32 * 5e-4)
            .chain([1e-8, -1e-30, 0.0, 40.0, -1e4])
            .collect();
        let mut ys = xs.clone();
        tanh_in_place(&mut ys);
        let worst = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (x.tanh() - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 3e-7, "max error {worst}");
        assert_eq!(tanh_fast(0.0), 0.0);
        assert_eq!(tanh_fast(40.0), 1.0);
        assert_eq!(tanh_fast(-40.0), -1.0);
    }

    #[test]
    fn forward_by_hand() {
        // dims [1, 1, 1, 1]: out = w3·tanh(w2·tanh(w1·x + b1) + b2) + b3.
        let m = Mlp {
            dims: [1, 1, 1, 1],
            offset: 0,
        };
        let p = [0.5, 0.1, 2.0, -0.3, 1.5, 0.25];
        let mut a = Activations::default();
        m.forward(&p, &[2.0], 1, &mut a);
        let h1 = (0.5f32 * 2.0 + 0.1).tanh();
        let h2 = (2.0 * h1 - 0.3).tanh();
        assert!((a.out[0] - (1.5 * h2 + 0.25)).abs() < 1e-6);
    }
}
