//! Small dense matrix products (collect's PPO learners: `n ≤ a few hundred` rows, `≤ 64`
//! columns). The `gemm` crate (the parent module) packs both operands on every call, which
//! cost as much as the arithmetic at these sizes; here the product runs straight from the
//! row-major operands in register tiles of 4 rows × 16 columns, on the calling thread.

use crate::kernels::simd;

/// `C = A·B` (or `C += A·B` with `accumulate`), all row-major: `A` `[n, k]`, `B` `[k, m]`,
/// `C` `[n, m]`.
pub fn mm(n: usize, k: usize, m: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    mm_strided(n, k, m, a, (k, 1), b, c, accumulate);
}

/// `C = Aᵀ·B` with `A` stored row-major as `[k, n]` (weight gradients `inputᵀ·δ` without
/// transposing the input).
pub fn mm_tn(n: usize, k: usize, m: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    mm_strided(n, k, m, a, (1, n), b, c, accumulate);
}

/// `C = A·B` where element `(i, p)` of `A` is `a[i·rs + p·cs]`.
#[allow(clippy::too_many_arguments)]
fn mm_strided(
    n: usize,
    k: usize,
    m: usize,
    a: &[f32],
    (rs, cs): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    if n == 0 || m == 0 {
        return;
    }
    assert!(k == 0 || a.len() > (n - 1) * rs + (k - 1) * cs, "A size");
    assert!(b.len() >= k * m && c.len() >= n * m, "operand sizes");
    let a = Strided { a, rs, cs };
    #[cfg(target_arch = "x86_64")]
    if simd::has_wide() {
        // SAFETY: the CPU has the features `tiles_fma` is compiled for.
        unsafe { tiles_fma(n, k, m, a, b, c, accumulate) };
        return;
    }
    tiles::<false>(n, k, m, a, b, c, accumulate);
}

/// [`tiles`] with hardware FMA. A named `target_feature` function rather than a closure
/// through `simd::wide`: the closure was not inlined once this code moved into core, and every
/// `mul_add` became a call to the software `fmaf` (collection ran 40x slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tiles_fma(n: usize, k: usize, m: usize, a: Strided, b: &[f32], c: &mut [f32], acc: bool) {
    tiles::<true>(n, k, m, a, b, c, acc)
}

#[derive(Clone, Copy)]
struct Strided<'a> {
    a: &'a [f32],
    rs: usize,
    cs: usize,
}

/// `dst` `[cols, rows]` = transpose of `src` `[rows, cols]`.
pub fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut Vec<f32>) {
    dst.resize(rows * cols, 0.0);
    if rows == 0 || cols == 0 {
        return;
    }
    for (c, out) in dst.chunks_exact_mut(rows).enumerate() {
        for (o, row) in out.iter_mut().zip(src[..rows * cols].chunks_exact(cols)) {
            *o = row[c];
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    // Without hardware FMA, `mul_add` would call a slow software routine.
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn tiles<const FMA: bool>(
    n: usize,
    k: usize,
    m: usize,
    a: Strided,
    b: &[f32],
    c: &mut [f32],
    acc: bool,
) {
    let mut i = 0;
    while i + 4 <= n {
        row_block::<FMA, 4>(i, k, m, a, b, c, acc);
        i += 4;
    }
    while i < n {
        row_block::<FMA, 1>(i, k, m, a, b, c, acc);
        i += 1;
    }
}

/// Rows `i..i+R` of `C`, column tiles of 16, then 8, then one at a time.
#[inline(always)]
fn row_block<const FMA: bool, const R: usize>(
    i: usize,
    k: usize,
    m: usize,
    a: Strided,
    b: &[f32],
    c: &mut [f32],
    acc: bool,
) {
    let mut j = 0;
    while j + 16 <= m {
        tile::<FMA, R, 16>(i, j, k, m, a, b, c, acc);
        j += 16;
    }
    if j + 8 <= m {
        tile::<FMA, R, 8>(i, j, k, m, a, b, c, acc);
        j += 8;
    }
    while j < m {
        tile::<FMA, R, 1>(i, j, k, m, a, b, c, acc);
        j += 1;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile<const FMA: bool, const R: usize, const W: usize>(
    i: usize,
    j: usize,
    k: usize,
    m: usize,
    a: Strided,
    b: &[f32],
    c: &mut [f32],
    acc: bool,
) {
    let mut t = [[0f32; W]; R];
    for p in 0..k {
        let bp: &[f32; W] = b[p * m + j..p * m + j + W]
            .try_into()
            .expect("tile in bounds");
        let base = i * a.rs + p * a.cs;
        for (r, tr) in t.iter_mut().enumerate() {
            let av = a.a[base + r * a.rs];
            for (tw, &bw) in tr.iter_mut().zip(bp) {
                *tw = madd::<FMA>(av, bw, *tw);
            }
        }
    }
    for (r, tr) in t.iter().enumerate() {
        let cr: &mut [f32; W] = (&mut c[(i + r) * m + j..(i + r) * m + j + W])
            .try_into()
            .expect("tile in bounds");
        for (cw, &tw) in cr.iter_mut().zip(tr) {
            *cw = if acc { *cw + tw } else { tw };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: usize, k: usize, m: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                c[i * m + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * m + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_on_ragged_shapes() {
        // Shapes that exercise every tile: rows 4-blocks + remainder, columns 16/8/1 tiles.
        for (n, k, m) in [
            (40, 64, 64),
            (7, 3, 29),
            (1, 1, 1),
            (5, 64, 5),
            (64, 40, 1),
            (2, 40, 64),
            (6, 0, 3),
        ] {
            let a: Vec<f32> = (0..n * k)
                .map(|x| ((x * 37 % 11) as f32 - 5.0) * 0.25)
                .collect();
            let b: Vec<f32> = (0..k * m)
                .map(|x| ((x * 53 % 13) as f32 - 6.0) * 0.125)
                .collect();
            let want = naive(n, k, m, &a, &b);
            let mut c = vec![9.0; n * m];
            mm(n, k, m, &a, &b, &mut c, false);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4, "{n}x{k}x{m}: {x} vs {y}");
            }
            // The same product from A stored transposed.
            let mut at = Vec::new();
            transpose(n, k, &a, &mut at);
            let mut c2 = vec![9.0; n * m];
            mm_tn(n, k, m, &at, &b, &mut c2, false);
            assert_eq!(c, c2, "{n}x{k}x{m} tn");
            // Accumulating adds the same product again.
            mm(n, k, m, &a, &b, &mut c, true);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 2e-4, "{n}x{k}x{m} accumulate");
            }
        }
    }

    #[test]
    fn transpose_small() {
        let mut t = Vec::new();
        transpose(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut t);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
