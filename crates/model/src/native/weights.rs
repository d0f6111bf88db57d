//! Where each named tensor lives in the flat parameter vector, and views of that vector (or
//! of a gradient vector laid out like it) by name: [`Parts`] of slices instead of offsets at
//! every use.

use std::collections::HashMap;
use std::ops::Range;

use ccad_core::tokens::{slot_table, token_kind, token_type, type_of_kind};

use super::ParamSlot;
use crate::AdModelConfig;

/// One block's tensors (ranges, weights or gradients). Matrices are row-major
/// `[d_in, d_out]` (burn's `Linear` layout).
#[derive(Debug, Clone)]
pub struct LayerParts<T> {
    pub ln1_g: T,
    pub ln1_b: T,
    /// `[d, 3d]`: query | key | value, heads side by side within each.
    pub qkv_w: T,
    pub qkv_b: T,
    pub out_w: T,
    pub out_b: T,
    pub ln2_g: T,
    pub ln2_b: T,
    pub fc_in_w: T,
    pub fc_in_b: T,
    pub fc_out_w: T,
    pub fc_out_b: T,
}

/// Every tensor the computation reads, by name.
#[derive(Debug, Clone)]
pub struct Parts<T> {
    pub transition_w: T,
    pub transition_b: T,
    /// `[n_states, d]`: the query token's state embedding.
    pub query: T,
    /// `[3, d]`: token-type embedding.
    pub token_type: T,
    pub open: T,
    pub close: T,
    /// `[max_len, d]`.
    pub position: T,
    /// `[slot_table::rows(slots), d]`: memory and kept tokens' slot and region-index rows.
    pub slot: Option<T>,
    pub layers: Vec<LayerParts<T>>,
    pub norm_g: T,
    pub norm_b: T,
    pub action_w: T,
    pub action_b: T,
    pub type_w: T,
    pub type_b: T,
}

/// Where each tensor lives in [`super::NativeNet::params`].
pub type Layout = Parts<Range<usize>>;
/// The parameters by name.
pub type Weights<'a> = Parts<&'a [f32]>;
/// A gradient vector by name.
pub type Grads<'a> = Parts<&'a mut [f32]>;

impl<T> LayerParts<T> {
    fn map<U>(self, f: &mut impl FnMut(T) -> U) -> LayerParts<U> {
        LayerParts {
            ln1_g: f(self.ln1_g),
            ln1_b: f(self.ln1_b),
            qkv_w: f(self.qkv_w),
            qkv_b: f(self.qkv_b),
            out_w: f(self.out_w),
            out_b: f(self.out_b),
            ln2_g: f(self.ln2_g),
            ln2_b: f(self.ln2_b),
            fc_in_w: f(self.fc_in_w),
            fc_in_b: f(self.fc_in_b),
            fc_out_w: f(self.fc_out_w),
            fc_out_b: f(self.fc_out_b),
        }
    }
}

impl<T> Parts<T> {
    fn map<U>(self, mut f: impl FnMut(T) -> U) -> Parts<U> {
        Parts {
            transition_w: f(self.transition_w),
            transition_b: f(self.transition_b),
            query: f(self.query),
            token_type: f(self.token_type),
            open: f(self.open),
            close: f(self.close),
            position: f(self.position),
            slot: self.slot.map(&mut f),
            layers: self.layers.into_iter().map(|l| l.map(&mut f)).collect(),
            norm_g: f(self.norm_g),
            norm_b: f(self.norm_b),
            action_w: f(self.action_w),
            action_b: f(self.action_b),
            type_w: f(self.type_w),
            type_b: f(self.type_b),
        }
    }
}

impl Layout {
    /// `params` by name.
    pub fn weights<'a>(&self, params: &'a [f32]) -> Weights<'a> {
        self.clone().map(|r| &params[r])
    }

    /// `grads` (laid out like the parameters) by name, each part a disjoint mutable slice.
    pub fn grads<'a>(&self, grads: &'a mut [f32]) -> Grads<'a> {
        let mut ranges: Vec<Range<usize>> = Vec::new();
        self.clone().map(|r| ranges.push(r));
        ranges.sort_by_key(|r| r.start);
        let mut pieces: HashMap<usize, &'a mut [f32]> = HashMap::with_capacity(ranges.len());
        let (mut rest, mut at) = (grads, 0);
        for r in ranges {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(r.start - at);
            let (piece, tail) = tail.split_at_mut(r.len());
            pieces.insert(r.start, piece);
            (rest, at) = (tail, r.end);
        }
        self.clone()
            .map(|r| pieces.remove(&r.start).expect("parts do not overlap"))
    }
}

impl Weights<'_> {
    /// `[kinds, d]` by token kind: token-type embedding plus the marker's own embedding for
    /// `<c>` / `</c>` (one lookup then adds both to a token). A model with 5 token types
    /// embeds every kind, an older one the kinds up to the query.
    pub fn kind_table(&self) -> Vec<f32> {
        let d = self.open.len();
        let kinds = if self.token_type.len() / d > token_type::COUNT {
            token_kind::COUNT
        } else {
            token_kind::QUERY as usize + 1
        };
        let mut t = vec![0.0f32; kinds * d];
        for k in 0..kinds as u8 {
            let ty = type_of_kind(k) as usize;
            let row = &mut t[k as usize * d..(k as usize + 1) * d];
            row.copy_from_slice(&self.token_type[ty * d..][..d]);
            let marker = match k {
                token_kind::OPEN => Some(self.open),
                token_kind::CLOSE => Some(self.close),
                _ => None,
            };
            if let Some(m) = marker {
                row.iter_mut().zip(m).for_each(|(r, m)| *r += m);
            }
        }
        t
    }
}

/// Find every tensor the computation needs, with its expected shape. Err names a parameter
/// this code expects and did not find (or found with another shape), or one it does not use.
pub(crate) fn layout(c: &AdModelConfig, slots: &[ParamSlot]) -> Result<Layout, String> {
    let mut by_name: HashMap<&str, &ParamSlot> =
        slots.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut take = |name: &str, shape: &[usize]| -> Result<Range<usize>, String> {
        let s = by_name
            .remove(name)
            .ok_or_else(|| format!("model parameter {name} not found"))?;
        if s.shape != shape {
            return Err(format!(
                "model parameter {name} has shape {:?}, expected {shape:?}",
                s.shape
            ));
        }
        Ok(s.offset..s.offset + s.len)
    };
    let (d, ff) = (c.d_model, c.d_ff);
    let transition_w = take("transition.weight", &[c.feat_dim, d])?;
    let transition_b = take("transition.bias", &[d])?;
    let query = take("query_state.weight", &[c.n_states, d])?;
    let token_type_at = take("token_type.weight", &[c.token_types, d])?;
    let open = take("open", &[d])?;
    let close = take("close", &[d])?;
    let position = take("position.weight", &[c.max_len, d])?;
    let slot = if c.slots > 0 {
        Some(take("slot.weight", &[slot_table::rows(c.slots), d])?)
    } else {
        None
    };
    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let p = |s: &str| format!("blocks.{i}.{s}");
        layers.push(LayerParts {
            ln1_g: take(&p("ln_attn.gamma"), &[d])?,
            ln1_b: take(&p("ln_attn.beta"), &[d])?,
            qkv_w: take(&p("attn.qkv.weight"), &[d, 3 * d])?,
            qkv_b: take(&p("attn.qkv.bias"), &[3 * d])?,
            out_w: take(&p("attn.out.weight"), &[d, d])?,
            out_b: take(&p("attn.out.bias"), &[d])?,
            ln2_g: take(&p("ln_mlp.gamma"), &[d])?,
            ln2_b: take(&p("ln_mlp.beta"), &[d])?,
            fc_in_w: take(&p("fc_in.weight"), &[d, ff])?,
            fc_in_b: take(&p("fc_in.bias"), &[ff])?,
            fc_out_w: take(&p("fc_out.weight"), &[ff, d])?,
            fc_out_b: take(&p("fc_out.bias"), &[d])?,
        });
    }
    let at = Layout {
        transition_w,
        transition_b,
        query,
        token_type: token_type_at,
        open,
        close,
        position,
        slot,
        layers,
        norm_g: take("norm.gamma", &[d])?,
        norm_b: take("norm.beta", &[d])?,
        action_w: take("action_head.weight", &[d, c.n_actions])?,
        action_b: take("action_head.bias", &[c.n_actions])?,
        type_w: take("type_head.weight", &[d, token_type::COUNT])?,
        type_b: take("type_head.bias", &[token_type::COUNT])?,
    };
    if let Some(name) = by_name.keys().next() {
        return Err(format!(
            "model parameter {name} is not used by the native implementation"
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grads_are_disjoint_views_in_place() {
        // Two parts out of order in the vector, with a gap: each view is its own range.
        let layout = Parts {
            transition_w: 4..6,
            transition_b: 0..2,
            query: 2..3,
            token_type: 3..4,
            open: 6..7,
            close: 7..8,
            position: 8..9,
            slot: None,
            layers: vec![],
            norm_g: 9..10,
            norm_b: 10..11,
            action_w: 11..12,
            action_b: 12..13,
            type_w: 13..14,
            type_b: 14..15,
        };
        let mut g = vec![0.0f32; 16];
        {
            let parts = layout.grads(&mut g);
            parts.transition_w.fill(1.0);
            parts.transition_b.fill(2.0);
            parts.type_b.fill(3.0);
        }
        assert_eq!(&g[..7], &[2.0, 2.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!((g[14], g[15]), (3.0, 0.0));
        let w = layout.weights(&g);
        assert_eq!(w.transition_w, &[1.0, 1.0]);
    }
}
