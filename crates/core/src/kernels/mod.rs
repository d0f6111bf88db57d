//! Flat `f32` kernels shared by every hand-written numeric path (collect's PPO learners, the
//! model's native training step and decoder): matrix products, layer norm, activations,
//! reductions, dropout masks, reusable buffers, Adam/AdamW and gradient clipping, and the
//! run-time AVX2/FMA dispatch they are compiled through. One implementation of each, so the
//! learners and the transformer cannot drift apart.

pub mod activation;
pub mod buffers;
pub mod dropout;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod simd;
pub mod softmax;

/// Rows per parallel chunk of the row-wise passes.
const ROWS_PER_TASK: usize = 256;
