//! Row-major matrix products through the `gemm` crate (the kernel burn's CPU backend uses),
//! strided views for per-head attention products, bias add and bias gradient, the one-token
//! product of the decoder (a vector through a weight matrix, no thread pool); [`small`]: the
//! register-tiled products for small matrices, where `gemm`'s packing costs more than it saves.

pub mod small;

use gemm::Parallelism;
use rayon::prelude::*;

use super::ROWS_PER_TASK;
use crate::wide_fn;

/// `c (m×n) = a (m×k) · b (k×n)`, plus the old `c` when `accumulate`.
pub fn mm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
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
pub fn mm_tn(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
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
pub fn mm_nt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool) {
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
pub struct View {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    pub fn new(off: usize, rs: usize, cs: usize) -> Self {
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
pub fn mm_view(
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

/// `y += a · x` elementwise.
#[inline(always)]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

wide_fn! {
    /// `out += x · w` with `w` row-major `[x.len(), out.len()]` (burn's `Linear` layout): one
    /// token through a linear layer, on the calling thread. Rows of `w` are scaled and summed,
    /// so the inner loop runs over contiguous memory.
    pub fn matvec_acc(x: &[f32], w: &[f32], out: &mut [f32]) {
        let n = out.len();
        assert_eq!(w.len(), x.len() * n, "matvec: weight is not [x.len(), out.len()]");
        for (xi, row) in x.iter().zip(w.chunks_exact(n)) {
            axpy(*xi, row, out);
        }
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
pub fn add_bias(y: &mut [f32], bias: &[f32]) {
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

/// Column sums of `dy` (`n` columns) added into `out`: a bias gradient. Chunks of
/// `ROWS_PER_TASK` rows are summed in parallel and their sums added in chunk order, so the
/// result does not depend on the thread count or on scheduling.
pub fn add_column_sums(dy: &[f32], n: usize, out: &mut [f32]) {
    let partial: Vec<Vec<f32>> = dy
        .par_chunks(n * ROWS_PER_TASK)
        .map(|rows| {
            let mut s = vec![0.0f32; n];
            column_sums_rows(rows, &mut s);
            s
        })
        .collect();
    let mut sums = vec![0.0f32; n];
    for p in &partial {
        sums.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    out.iter_mut().zip(&sums).for_each(|(o, s)| *o += s);
}

wide_fn! {
    fn column_sums_rows(rows: &[f32], sums: &mut [f32]) {
        for row in rows.chunks_exact(sums.len()) {
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matvec_uses_the_input_by_output_layout() {
        // [0.5, 0, 0] + [1, 2] · [[1, 2, 3], [4, 5, 6]] = [9.5, 12, 15].
        let mut out = [0.5, 0.0, 0.0];
        matvec_acc(&[1.0, 2.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut out);
        assert_eq!(out, [9.5, 12.0, 15.0]);
        let mut y = [1.0, 1.0];
        axpy(2.0, &[3.0, -1.0], &mut y);
        assert_eq!(y, [7.0, -1.0]);
    }

    #[test]
    fn matvec_matches_the_matrix_product() {
        // Eleven outputs (a vector lane and a remainder), five inputs.
        let x: Vec<f32> = (0..5).map(|i| i as f32 * 0.5 - 1.0).collect();
        let w: Vec<f32> = (0..55).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let mut want = vec![0.0f32; 11];
        mm(1, 5, 11, &x, &w, &mut want, false);
        let mut got = vec![0.0f32; 11];
        matvec_acc(&x, &w, &mut got);
        // Small integers and halves: both orders are exact.
        assert_eq!(got, want);
    }
}
