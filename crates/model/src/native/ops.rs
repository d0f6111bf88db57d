//! Row-major building blocks of the native step: matrix products through `gemm`, bias,
//! layer norm, GELU, and dropout's counter-based random numbers.

use ccad_core::wide_fn;
use gemm::Parallelism;
use rayon::prelude::*;

/// `burn::nn::LayerNorm`'s default epsilon.
pub(crate) const LN_EPS: f32 = 1e-5;

/// Rows per parallel chunk of the elementwise passes.
const ROWS_PER_TASK: usize = 256;

/// `c (m×n) = a (m×k) · b (k×n)`, plus the old `c` when `accumulate`.
pub(crate) fn mm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the asserts bound every index gemm reads or writes for these strides.
    unsafe {
        raw(
            m,
            k,
            n,
            c,
            (a.as_ptr(), k as isize, 1),
            (b.as_ptr(), n as isize, 1),
            acc,
        )
    }
}

/// `c (m×n) = aᵀ · b` with `a` stored `k×m` and `b` `k×n` (a weight gradient `Xᵀ dY`).
pub(crate) fn mm_tn(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
    assert!(a.len() >= k * m && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: as in `mm`.
    unsafe {
        raw(
            m,
            k,
            n,
            c,
            (a.as_ptr(), 1, m as isize),
            (b.as_ptr(), n as isize, 1),
            acc,
        )
    }
}

/// `c (m×n) = a · bᵀ` with `a` stored `m×k` and `b` `n×k` (an input gradient `dY Wᵀ`).
pub(crate) fn mm_nt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    // SAFETY: as in `mm`.
    unsafe {
        raw(
            m,
            k,
            n,
            c,
            (a.as_ptr(), k as isize, 1),
            (b.as_ptr(), 1, k as isize),
            acc,
        )
    }
}

/// A strided matrix inside a slice: element `(i, j)` at `off + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    pub(crate) fn new(off: usize, rs: usize, cs: usize) -> Self {
        Self { off, rs, cs }
    }

    /// Panics unless a `rows × cols` matrix through this view fits in `len` elements.
    fn check(&self, rows: usize, cols: usize, len: usize) {
        if rows > 0 && cols > 0 {
            let last = self.off + (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(last < len, "strided view out of bounds");
        }
    }
}

/// `c = scale · a · b (+ c when acc)` on the calling thread, every operand strided:
/// `a` is `m×k`, `b` `k×n`, `c` `m×n`. For the small per-head products of attention.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mm_view(
    (m, k, n): (usize, usize, usize),
    a: (&[f32], View),
    b: (&[f32], View),
    c: (&mut [f32], View),
    scale: f32,
    acc: bool,
) {
    a.1.check(m, k, a.0.len());
    b.1.check(k, n, b.0.len());
    c.1.check(m, n, c.0.len());
    if m == 0 || n == 0 || k == 0 {
        assert!(acc || k > 0, "mm_view: empty inner dimension");
        return;
    }
    // SAFETY: `check` bounds every element gemm touches through these strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0.as_mut_ptr().add(c.1.off),
            c.1.cs as isize,
            c.1.rs as isize,
            acc,
            a.0.as_ptr().add(a.1.off),
            a.1.cs as isize,
            a.1.rs as isize,
            b.0.as_ptr().add(b.1.off),
            b.1.cs as isize,
            b.1.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `(pointer, row stride, column stride)` of an operand.
type Operand = (*const f32, isize, isize);

/// # Safety
/// The operands' strides must stay inside their buffers for an `m×k` lhs and `k×n` rhs.
unsafe fn raw(m: usize, k: usize, n: usize, c: &mut [f32], a: Operand, b: Operand, acc: bool) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // Small products are faster on one thread than split across a busy pool.
    let par = if m * n * k >= 1 << 16 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `y[r] += bias` for every row of `y` (`n` columns).
pub(crate) fn add_bias(y: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    y.par_chunks_mut(n * ROWS_PER_TASK)
        .for_each(|rows| add_bias_rows(rows, bias));
}

wide_fn! {
    fn add_bias_rows(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
}

/// Column sums of `dy` (`n` columns) added into `out`: a bias gradient.
pub(crate) fn add_column_sums(dy: &[f32], n: usize, out: &mut [f32]) {
    let sums = dy
        .par_chunks(n * ROWS_PER_TASK)
        .map(|rows| {
            let mut s = vec![0.0f32; n];
            column_sums_rows(rows, &mut s);
            s
        })
        .reduce(
            || vec![0.0f32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    out.iter_mut().zip(&sums).for_each(|(o, s)| *o += s);
}

wide_fn! {
    fn column_sums_rows(rows: &[f32], sums: &mut [f32]) {
        for row in rows.chunks_exact(sums.len()) {
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
    }
}

/// Layer norm of every `d`-row of `x` into `y`; keeps `xhat` (normalised input) and the
/// reciprocal standard deviation of each row for the backward pass.
pub(crate) fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let d = gamma.len();
    y.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(xhat.par_chunks_mut(d * ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(((y, xh), rs), x)| layer_norm_rows(x, gamma, beta, y, xh, rs));
}

wide_fn! {
    fn layer_norm_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        y: &mut [f32],
        xh: &mut [f32],
        rs: &mut [f32],
    ) {
        let d = gamma.len();
        for (((y, xh), r), x) in y
            .chunks_exact_mut(d)
            .zip(xh.chunks_exact_mut(d))
            .zip(rs.iter_mut())
            .zip(x.chunks_exact(d))
        {
            let mean = sum8(x) / d as f32;
            for (h, v) in xh.iter_mut().zip(x) {
                *h = v - mean;
            }
            let var = dot8(xh, xh) / d as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            *r = inv;
            for ((y, h), (g, b)) in y.iter_mut().zip(xh.iter_mut()).zip(gamma.iter().zip(beta)) {
                *h *= inv;
                *y = *h * g + b;
            }
        }
    }
}

/// Backward of [`layer_norm`]: adds `dx` into `dx_acc`, `dgamma`/`dbeta` into their slots.
pub(crate) fn layer_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dx_acc: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let d = gamma.len();
    let (dg, db) = dx_acc
        .par_chunks_mut(d * ROWS_PER_TASK)
        .zip(dy.par_chunks(d * ROWS_PER_TASK))
        .zip(xhat.par_chunks(d * ROWS_PER_TASK))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .map(|(((dx, dy), xh), rs)| {
            let mut dg = vec![0.0f32; d];
            let mut db = vec![0.0f32; d];
            let mut g = vec![0.0f32; d];
            layer_norm_backward_rows(dx, dy, xh, rs, gamma, &mut dg, &mut db, &mut g);
            (dg, db)
        })
        .reduce(
            || (vec![0.0f32; d], vec![0.0f32; d]),
            |(mut a, mut b), (c, e)| {
                a.iter_mut().zip(&c).for_each(|(a, c)| *a += c);
                b.iter_mut().zip(&e).for_each(|(b, e)| *b += e);
                (a, b)
            },
        );
    dgamma.iter_mut().zip(&dg).for_each(|(o, v)| *o += v);
    dbeta.iter_mut().zip(&db).for_each(|(o, v)| *o += v);
}

wide_fn! {
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_backward_rows(
        dx: &mut [f32],
        dy: &[f32],
        xh: &[f32],
        rs: &[f32],
        gamma: &[f32],
        dg: &mut [f32],
        db: &mut [f32],
        g: &mut [f32],
    ) {
        let d = gamma.len();
        for (((dx, dy), xh), &r) in dx
            .chunks_exact_mut(d)
            .zip(dy.chunks_exact(d))
            .zip(xh.chunks_exact(d))
            .zip(rs)
        {
            for i in 0..d {
                dg[i] += dy[i] * xh[i];
                db[i] += dy[i];
                g[i] = dy[i] * gamma[i];
            }
            let mean_g = sum8(g) / d as f32;
            let mean_gx = dot8(g, xh) / d as f32;
            for ((dx, g), h) in dx.iter_mut().zip(g.iter()).zip(xh) {
                *dx += r * (g - mean_g - h * mean_gx);
            }
        }
    }
}

/// `erf` to about 1.2e-7 absolute (Abramowitz & Stegun 7.1.26 is too coarse for a
/// gradient check; this is the Numerical Recipes `erfc` Chebyshev fit, in f32).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// Exact GELU `x/2 · (1 + erf(x/√2))` of `pre` into `out` (burn's `gelu`).
pub(crate) fn gelu(pre: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(4096)
        .zip(pre.par_chunks(4096))
        .for_each(|(o, p)| gelu_chunk(p, o));
}

wide_fn! {
    fn gelu_chunk(pre: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(pre) {
            *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// `d = d · gelu'(pre)` in place.
pub(crate) fn gelu_backward(pre: &[f32], d: &mut [f32]) {
    d.par_chunks_mut(4096)
        .zip(pre.par_chunks(4096))
        .for_each(|(d, p)| gelu_backward_chunk(p, d));
}

wide_fn! {
    fn gelu_backward_chunk(pre: &[f32], d: &mut [f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (d, &x) in d.iter_mut().zip(pre) {
            let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
            *d *= cdf + x * pdf;
        }
    }
}

/// Dropout's random numbers: element `index` of a site (a place in the network, or one
/// attention square) is kept when a 32-bit hash of the site's key and the index falls below
/// `keep · 2³²`. Counter-based, so the backward pass regenerates a mask instead of storing
/// it, any thread can compute any element, and 32-bit arithmetic keeps it vectorised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropout {
    seed: u64,
    threshold: u32,
    /// `1 / keep`: kept elements are scaled so the expectation is unchanged (as burn's).
    pub scale: f32,
}

impl Dropout {
    /// `None` when nothing is dropped (rate 0 or inference).
    pub(crate) fn new(rate: f64, seed: Option<u64>) -> Option<Self> {
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
    pub(crate) fn site(&self, site: u64) -> Site {
        let key = mix(self.seed ^ mix(site.wrapping_add(0xD6E8_FEB8_6659_FD93)));
        Site {
            key: (key ^ (key >> 32)) as u32,
            threshold: self.threshold,
            scale: self.scale,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Site {
    key: u32,
    threshold: u32,
    pub scale: f32,
}

impl Site {
    /// A site of its own for sub-block `block` of this one (one attention square).
    pub(crate) fn sub(&self, block: u64) -> Site {
        let key = mix((self.key as u64) << 32 ^ block);
        Site {
            key: (key ^ (key >> 32)) as u32,
            ..*self
        }
    }

    /// The multiplier of element `index` (< 2³²): `1/keep` or 0.
    #[inline(always)]
    pub(crate) fn factor(&self, index: u32) -> f32 {
        if fmix32(self.key ^ index.wrapping_mul(0x9E37_79B9)) < self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// Multiply `x` (elements `0..x.len()` of the site) by its mask.
    pub(crate) fn apply(&self, x: &mut [f32]) {
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

/// Sum with eight independent accumulators: a plain `f32` sum is a serial chain the compiler
/// may not reorder, so it would not vectorise.
#[inline(always)]
pub(crate) fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `Σ a·b` with eight accumulators (see [`sum8`]).
#[inline(always)]
pub(crate) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Largest element (`-inf` for an empty slice), vectorisable.
#[inline(always)]
pub(crate) fn max8(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder() {
        m = if v > m { v } else { m };
    }
    for c in chunks {
        for k in 0..8 {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    acc.iter().fold(m, |m, &v| if v > m { v } else { m })
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

/// Split `buf` into consecutive mutable pieces of the given lengths.
pub(crate) fn split_lengths<'a>(mut buf: &'a mut [f32], lens: &[usize]) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (head, tail) = buf.split_at_mut(n);
        out.push(head);
        buf = tail;
    }
    out
}

/// Step buffers kept between steps. A step needs a few hundred MB of activations; fresh
/// allocations of that size come from the kernel as zeroed pages on every step (page faults
/// cost about a third of a step), reused ones do not.
#[derive(Default)]
pub(crate) struct Pool(std::sync::Mutex<Vec<Vec<f32>>>);

impl Pool {
    /// A buffer of `len` elements with unspecified contents: callers overwrite it.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.0.lock().expect("pool lock");
        let fit = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match fit {
            Some(i) => free.swap_remove(i),
            None => free.pop().unwrap_or_default(),
        };
        drop(free);
        // Shrinking keeps old values; only growth writes (zeros).
        v.truncate(len);
        v.resize(len, 0.0);
        v
    }

    /// A buffer of `len` zeros.
    pub(crate) fn zeros(&self, len: usize) -> Vec<f32> {
        let mut v = self.take(len);
        v.fill(0.0);
        v
    }

    pub(crate) fn give(&self, v: Vec<f32>) {
        self.0.lock().expect("pool lock").push(v);
    }
}

impl Clone for Pool {
    /// A clone starts with no buffers of its own.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// `e^x` for `x` in about [-87, 88] (clamped outside), within 2 ulp: Cephes' `expf`, written
/// without branches so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}
