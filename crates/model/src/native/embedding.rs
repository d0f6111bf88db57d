//! Token embedding, forward and backward, and the decoder's one-token forward:
//! `x = (features · W + b | query[state] | 0) + kind_table[kind] + position[pos]`, where
//! `kind_table` ([`Weights::kind_table`]) holds the token-type embedding plus the `<c>` /
//! `</c>` embedding of marker tokens. Memory and kept tokens add their slot-table rows
//! instead of a position (kept tokens carry features like transitions).

use ccad_core::kernels::matmul::{matvec_acc, mm, mm_tn};
use ccad_core::tokens::{NO_SLOT, has_features, slot_table, token_kind, type_of_kind};
use rayon::prelude::*;

use super::batch::Packed;
use super::weights::{Grads, Weights};
use crate::Token;

/// `x [n, d]`: the embedding of every packed token.
pub(crate) fn forward(w: &Weights, kinds: &[f32], p: &Packed, x: &mut [f32]) {
    let d = w.open.len();
    let f = w.transition_w.len() / d;
    mm(p.n, f, d, &p.features, w.transition_w, x, false);
    x.par_chunks_mut(d).enumerate().for_each(|(r, row)| {
        finish_row(
            w,
            kinds,
            (p.kinds[r], p.state[r], p.position[r]),
            p.slot_rows[r],
            row,
        );
    });
}

/// Backward of [`forward`]: every embedding's gradient from `dx [n, d]`.
pub(crate) fn backward(g: &mut Grads, p: &Packed, dx: &[f32]) {
    let d = g.open.len();
    let f = g.transition_w.len() / d;
    // Features are zero outside transitions, so the weight gradient needs no mask.
    mm_tn(f, p.n, d, &p.features, dx, g.transition_w, true);
    for r in 0..p.n {
        let row = &dx[r * d..(r + 1) * d];
        let kind = p.kinds[r];
        let add = |g: &mut [f32]| g.iter_mut().zip(row).for_each(|(g, v)| *g += v);
        match kind {
            token_kind::QUERY => add(&mut g.query[p.state[r] * d..][..d]),
            token_kind::OPEN => add(&mut *g.open),
            token_kind::CLOSE => add(&mut *g.close),
            k if has_features(k) => add(&mut *g.transition_b),
            _ => {}
        }
        add(&mut g.token_type[type_of_kind(kind) as usize * d..][..d]);
        let slots = p.slot_rows[r];
        if slots[0] == NO_SLOT {
            add(&mut g.position[p.position[r] * d..][..d]);
        }
        if let Some(table) = g.slot.as_deref_mut() {
            for &row in slots.iter().filter(|&&s| s != NO_SLOT) {
                add(&mut table[row as usize * d..][..d]);
            }
        }
    }
}

/// [`forward`] of one token at `position` into `row [d]`.
///
/// # Panics
/// If the token does not fit the model (features' length, state index).
pub(crate) fn decode(w: &Weights, kinds: &[f32], token: &Token, position: usize, row: &mut [f32]) {
    let d = row.len();
    let mut state = 0;
    if let Some(f) = token.features() {
        assert_eq!(
            f.len() * d,
            w.transition_w.len(),
            "transition features vs the model's feat_dim"
        );
        row.fill(0.0);
        matvec_acc(f, w.transition_w, row);
    }
    if let Token::Query(s) = token {
        let n_states = w.query.len() / d;
        assert!(
            *s < n_states,
            "query state {s} outside the model's {n_states} states"
        );
        state = *s;
    }
    let slots = match token {
        Token::Memory { slot, region } => [
            slot_table::slot_row(*slot) as i32,
            region.map_or(NO_SLOT, |r| slot_table::region_row(r) as i32),
        ],
        Token::Kept { slot, .. } => [slot_table::slot_row(*slot) as i32, NO_SLOT],
        _ => [NO_SLOT; 2],
    };
    finish_row(w, kinds, (token.kind(), state, position), slots, row);
}

/// One token's embedding once a transition's `features · W` is in `row`.
#[inline]
fn finish_row(
    w: &Weights,
    kinds: &[f32],
    (kind, state, position): (u8, usize, usize),
    slots: [i32; 2],
    row: &mut [f32],
) {
    let d = row.len();
    match kind {
        token_kind::QUERY => row.copy_from_slice(&w.query[state * d..][..d]),
        k if has_features(k) => {
            row.iter_mut()
                .zip(w.transition_b)
                .for_each(|(v, b)| *v += b);
        }
        _ => row.fill(0.0),
    }
    let kt = &kinds[kind as usize * d..][..d];
    row.iter_mut().zip(kt).for_each(|(v, k)| *v += k);
    if slots[0] == NO_SLOT {
        let pos = &w.position[position * d..][..d];
        row.iter_mut().zip(pos).for_each(|(v, p)| *v += p);
    }
    if let Some(table) = w.slot {
        for &s in slots.iter().filter(|&&s| s != NO_SLOT) {
            let t = &table[s as usize * d..][..d];
            row.iter_mut().zip(t).for_each(|(v, t)| *v += t);
        }
    }
}
