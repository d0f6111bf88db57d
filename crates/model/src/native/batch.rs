//! A [`TokenBatch`] packed for the native step: real tokens back to back, padding dropped.

use ccad_core::context::Visibility;
use ccad_core::tokens::{TokenBatch, token_kind};

use super::attention;
use crate::AdModelConfig;

/// The batch's real tokens, packed back to back (padding dropped).
pub(crate) struct Packed {
    /// `(first row, length)` of every non-empty sequence.
    pub seqs: Vec<(usize, usize)>,
    /// Offset of each sequence's attention probabilities (one head-major square each).
    pub probs_at: Vec<usize>,
    /// Each sequence's attention pattern.
    pub visibility: Vec<Visibility>,
    pub probs_total: usize,
    pub n: usize,
    pub features: Vec<f32>,
    pub kinds: Vec<u8>,
    pub state: Vec<usize>,
    pub position: Vec<usize>,
    pub target_action: Vec<i32>,
    pub target_type: Vec<i32>,
}

pub(crate) fn pack(c: &AdModelConfig, b: &TokenBatch) -> Packed {
    let (l, f) = (b.seq_len, b.feat_dim);
    assert_eq!(
        f, c.feat_dim,
        "TokenBatch.feat_dim differs from the model's"
    );
    assert!(
        l <= c.max_len,
        "TokenBatch.seq_len exceeds the model's max_len"
    );
    assert_eq!(
        b.features.len(),
        b.batch * l * f,
        "TokenBatch.features length"
    );
    assert_eq!(b.kinds.len(), b.batch * l, "TokenBatch.kinds length");
    assert_eq!(
        b.state_index.len(),
        b.batch * l,
        "TokenBatch.state_index length"
    );
    assert_eq!(
        b.target_action.len(),
        b.batch * l,
        "TokenBatch.target_action length"
    );
    assert_eq!(
        b.target_type.len(),
        b.batch * l,
        "TokenBatch.target_type length"
    );
    assert_eq!(b.lengths.len(), b.batch, "TokenBatch.lengths length");
    assert_eq!(b.visibility.len(), b.batch, "TokenBatch.visibility length");
    let n: usize = b.lengths.iter().sum();
    let mut p = Packed {
        seqs: Vec::new(),
        probs_at: Vec::new(),
        visibility: Vec::new(),
        probs_total: 0,
        n,
        features: Vec::with_capacity(n * f),
        kinds: Vec::with_capacity(n),
        state: Vec::with_capacity(n),
        position: Vec::with_capacity(n),
        target_action: Vec::with_capacity(n),
        target_type: Vec::with_capacity(n),
    };
    for (s, &len) in b.lengths.iter().enumerate() {
        assert!(len <= l, "TokenBatch.lengths[{s}] exceeds seq_len");
        let row0 = s * l;
        // Labels on padding would count in burn's loss and not here: refuse them.
        assert!(
            (row0 + len..row0 + l).all(|r| b.target_action[r] < 0 && b.target_type[r] < 0),
            "TokenBatch: a label past the sequence's length"
        );
        if len == 0 {
            continue;
        }
        p.seqs.push((p.kinds.len(), len));
        p.probs_at.push(p.probs_total);
        p.visibility.push(b.visibility[s].clone());
        p.probs_total += attention::probs_len(c.n_heads, len);
        for r in row0..row0 + len {
            let kind = b.kinds[r];
            assert!(
                kind <= token_kind::QUERY,
                "TokenBatch.kinds: not a token_kind"
            );
            let state = b.state_index[r];
            assert!(
                (0..c.n_states as i32).contains(&state),
                "TokenBatch.state_index outside [0, {})",
                c.n_states
            );
            p.features
                .extend_from_slice(&b.features[r * f..(r + 1) * f]);
            p.kinds.push(kind);
            p.state.push(state as usize);
            p.position.push(r - row0);
            p.target_action.push(b.target_action[r]);
            p.target_type.push(b.target_type[r]);
        }
    }
    p
}
