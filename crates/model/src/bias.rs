//! Additive attention biases for burn's attention: 0 where a query may attend to a key,
//! [`MASKED`] where it may not.

use burn::tensor::{Device, Tensor, TensorData};
use ccad_core::context::Visibility;

use crate::model::MASKED;

/// `[1, 1, L, L]`: 0 where key `j <= i`, [`MASKED`] after. Sequences are left-aligned, so a
/// real position `i < len` only sees keys `j <= i < len`: causality alone keeps padding out
/// of every real position's attention, with no per-sequence mask. Padding positions' own
/// outputs are never read (the loss weights them 0; readers index by length).
fn causal_bias(len: usize, device: &Device) -> Tensor<4> {
    let mut bias = vec![0.0f32; len * len];
    for i in 0..len {
        bias[i * len + i + 1..(i + 1) * len].fill(MASKED);
    }
    Tensor::from_data(TensorData::new(bias, [1, 1, len, len]), device)
}

/// The attention bias of sequences padded to `len`: [`causal_bias`] when every one is
/// causal, else `[B, 1, L, L]` with each sequence's [`Visibility`] (0 where it allows,
/// [`MASKED`] elsewhere). Positions past a visibility's pattern follow its last block.
pub(crate) fn attention_bias(visibility: &[&Visibility], len: usize, device: &Device) -> Tensor<4> {
    if visibility.iter().all(|v| v.is_causal()) {
        return causal_bias(len, device);
    }
    let mut bias = vec![MASKED; visibility.len() * len * len];
    let mut seen = vec![false; len];
    for (b, v) in visibility.iter().enumerate() {
        for i in 0..len {
            v.key_mask(i, &mut seen);
            let row = &mut bias[(b * len + i) * len..][..len];
            for (o, &s) in row.iter_mut().zip(&seen) {
                if s {
                    *o = 0.0;
                }
            }
        }
    }
    Tensor::from_data(
        TensorData::new(bias, [visibility.len(), 1, len, len]),
        device,
    )
}
