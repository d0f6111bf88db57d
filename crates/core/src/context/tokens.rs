//! Token vocabulary: compress markers (stored per transition), token kinds and types (seen by
//! the model), feature layouts, and the padded [`TokenBatch`] the model takes.

/// Marker of a stored transition (DESIGN §4).
pub mod marker {
    /// Inside a region.
    pub const NONE: u8 = 0;
    /// First transition of a region (`<compress>`).
    pub const START: u8 = 1;
    /// Last transition of a region (`</compress>`).
    pub const END: u8 = 2;
}

/// Token types the model embeds and the token-type head predicts.
pub mod token_type {
    /// A transition or the query.
    pub const TRANSITION: u8 = 0;
    /// `<c>`: a region opens.
    pub const OPEN: u8 = 1;
    /// `</c>`: a region closes.
    pub const CLOSE: u8 = 2;
    /// Classes of the token-type head (the next token is a transition, `<c>` or `</c>`).
    pub const COUNT: usize = 3;
    /// A memory token `<m_i>` (embedded, never predicted).
    pub const MEMORY: u8 = 3;
    /// A kept dense token of a dropped region (embedded, never predicted).
    pub const KEPT: u8 = 4;
    /// Rows of the type embedding of a model that embeds memory or kept tokens (older models
    /// have [`COUNT`]; model.json records which).
    pub const WITH_MEMORY: usize = 5;
}

/// Marker of transition `t` of a stream with regions of `interval` transitions (`interval ≥ 2`):
/// `START` if `t % I == 0`, `END` if `t % I == I - 1`, else `NONE`.
pub fn marker_at(t: usize, interval: usize) -> u8 {
    debug_assert!(interval >= 2);
    match t % interval {
        0 => marker::START,
        r if r == interval - 1 => marker::END,
        _ => marker::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_with_a_short_last_region() {
        // I = 3, T = 8: regions [0,3) [3,6) [6,8); the last is cut short and has no END.
        let m: Vec<u8> = (0..8).map(|t| marker_at(t, 3)).collect();
        assert_eq!(m, vec![1, 0, 2, 1, 0, 2, 1, 0]);
        // I = 2: every transition is a START or an END.
        let m: Vec<u8> = (0..5).map(|t| marker_at(t, 2)).collect();
        assert_eq!(m, vec![1, 2, 1, 2, 1]);
        assert_eq!(marker_at(80, 80), marker::START);
        assert_eq!(marker_at(159, 80), marker::END);
        assert_eq!(marker_at(158, 80), marker::NONE);
    }

    #[test]
    fn feature_layouts() {
        // (s=(1,2), a=3 of 5, r=1, s'=(1,3)) → [1,2, 0,0,0,1,0, 1, 1,3]
        let mut f = [9.0; 10];
        transition_features(&[1, 2], 3, 1.0, &[1, 3], 5, &mut f);
        assert_eq!(f, [1., 2., 0., 0., 0., 1., 0., 1., 1., 3.]);
        // Dense token: previous transition, done flag, then s_t = (4, 4).
        let mut g = [9.0; 13];
        let prev = PrevTransition {
            s: &[1, 2],
            a: 3,
            r: 1.0,
            s_next: &[1, 3],
            done: true,
        };
        dense_features(Some(prev), &[4, 4], 5, &mut g);
        assert_eq!(g, [1., 2., 0., 0., 0., 1., 0., 1., 1., 3., 1., 4., 4.]);
        dense_features(None, &[4, 4], 5, &mut g);
        assert_eq!(g, [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 4., 4.]);
        assert_eq!(dense_feature_dim(2, 5), 13);
    }
}

/// What a sequence position holds. The token-type embedding uses [`type_of_kind`].
pub mod token_kind {
    /// A transition `(s, a, r, s')`, embedded from its features.
    pub const TRANSITION: u8 = 0;
    /// `<c>` marker.
    pub const OPEN: u8 = 1;
    /// `</c>` marker.
    pub const CLOSE: u8 = 2;
    /// The query `q(s_t)`, embedded from the discrete state index.
    pub const QUERY: u8 = 3;
    /// A memory token `<m_i>`: no features; its slot (and, under concat, its region's index)
    /// embedded instead of a position.
    pub const MEMORY: u8 = 4;
    /// A kept dense token of a dropped region: its features, and its index among the kept
    /// embedded instead of a position.
    pub const KEPT: u8 = 5;
    /// Number of kinds.
    pub const COUNT: usize = 6;
}

/// Token type (0 transition/query, 1 `<c>`, 2 `</c>`, 3 memory, 4 kept) of a token kind.
pub fn type_of_kind(kind: u8) -> u8 {
    match kind {
        token_kind::OPEN => token_type::OPEN,
        token_kind::CLOSE => token_type::CLOSE,
        token_kind::MEMORY => token_type::MEMORY,
        token_kind::KEPT => token_type::KEPT,
        _ => token_type::TRANSITION,
    }
}

/// Whether a kind carries transition features (embedded through the transition projection).
pub fn has_features(kind: u8) -> bool {
    kind == token_kind::TRANSITION || kind == token_kind::KEPT
}

/// Slot and region-index embeddings of memory and kept tokens (the model's `slot` table):
/// rows `0 ..= REGION_CAP` embed a concat memory token's region index (capped), the rows
/// after them the slot (memory slot, or index among the kept).
pub mod slot_table {
    /// Region indexes past this share its row. In the shipped histories (13 regions of 80
    /// steps) region 11's memory is the last one a later block reads (region 12 has no later
    /// block), so every row up to this one is trained.
    pub const REGION_CAP: usize = 11;
    /// Rows before the first slot row.
    pub const REGION_ROWS: usize = REGION_CAP + 1;

    /// Row of a region index.
    pub fn region_row(region: usize) -> usize {
        region.min(REGION_CAP)
    }

    /// Row of slot `slot`.
    pub fn slot_row(slot: usize) -> usize {
        REGION_ROWS + slot
    }

    /// Rows of a table for `slots` slots (0 when a model has none).
    pub fn rows(slots: usize) -> usize {
        if slots == 0 { 0 } else { REGION_ROWS + slots }
    }
}

/// Value of [`TokenBatch::slot`] / [`TokenBatch::region`] at a token that has none.
pub const NO_SLOT: i32 = -1;

/// Label value of a position that is not supervised.
pub const IGNORE: i32 = -1;

/// Length of a transition's feature vector: `concat(s, one_hot(a), r, s')`.
pub fn transition_feature_dim(obs_dim: usize, n_actions: usize) -> usize {
    2 * obs_dim + n_actions + 1
}

/// Write `concat(s, one_hot(a), r, s')` into `out` (length [`transition_feature_dim`]).
pub fn transition_features(
    s: &[i32],
    a: usize,
    r: f32,
    s_next: &[i32],
    n_actions: usize,
    out: &mut [f32],
) {
    let d = s.len();
    debug_assert_eq!(out.len(), 2 * d + n_actions + 1);
    for (o, &v) in out[..d].iter_mut().zip(s) {
        *o = v as f32;
    }
    out[d..d + n_actions].fill(0.0);
    out[d + a] = 1.0;
    out[d + n_actions] = r;
    for (o, &v) in out[d + n_actions + 1..].iter_mut().zip(s_next) {
        *o = v as f32;
    }
}

/// The previous transition a dense-layout token carries.
#[derive(Debug, Clone, Copy)]
pub struct PrevTransition<'a> {
    pub s: &'a [i32],
    pub a: usize,
    pub r: f32,
    pub s_next: &'a [i32],
    pub done: bool,
}

/// Length of a dense-layout token's features: `concat(s_{t-1}, one_hot(a_{t-1}), r_{t-1},
/// s'_{t-1}, done_{t-1}, s_t)`.
pub fn dense_feature_dim(obs_dim: usize, n_actions: usize) -> usize {
    3 * obs_dim + n_actions + 2
}

/// Write a dense-layout token (the "dense" objective): the previous transition of the same
/// history (zeros at a history's first step, `prev = None`) and the current state `s_t`, from
/// which the token predicts `a_t`. `out` has length [`dense_feature_dim`].
pub fn dense_features(
    prev: Option<PrevTransition<'_>>,
    s: &[i32],
    n_actions: usize,
    out: &mut [f32],
) {
    let d = s.len();
    debug_assert_eq!(out.len(), 3 * d + n_actions + 2);
    let (head, tail) = out.split_at_mut(2 * d + n_actions + 1);
    match prev {
        Some(p) => {
            transition_features(p.s, p.a, p.r, p.s_next, n_actions, head);
            tail[0] = if p.done { 1.0 } else { 0.0 };
        }
        None => {
            head.fill(0.0);
            tail[0] = 0.0;
        }
    }
    for (o, &v) in tail[1..].iter_mut().zip(s) {
        *o = v as f32;
    }
}

/// A padded batch of token sequences, ready for the model: no per-token work left.
/// Sequences are left-aligned; positions `>= lengths[b]` are padding. Position embeddings use
/// the index within the sequence. Flat row-major buffers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq_len: usize,
    pub feat_dim: usize,
    /// `[batch, seq_len, feat_dim]`: transition features; zeros at other kinds and padding.
    pub features: Vec<f32>,
    /// `[batch, seq_len]`: a [`token_kind`] per position (padding: TRANSITION, masked).
    pub kinds: Vec<u8>,
    /// `[batch, seq_len]`: discrete state index at QUERY positions, 0 elsewhere.
    pub state_index: Vec<i32>,
    /// `[batch]`: real tokens per sequence.
    pub lengths: Vec<usize>,
    /// `[batch, seq_len]`: action label at supervised positions, [`IGNORE`] elsewhere.
    pub target_action: Vec<i32>,
    /// `[batch, seq_len]`: label of the next token's type at supervised positions, else [`IGNORE`].
    pub target_type: Vec<i32>,
    /// `[batch]`: each sequence's attention pattern (padding is never seen: it comes after
    /// every real token).
    pub visibility: Vec<super::Visibility>,
    /// `[batch, seq_len]`: slot of a memory or kept token (see [`slot_table`]), else
    /// [`NO_SLOT`]. A token with a slot has no position embedding.
    pub slot: Vec<i32>,
    /// `[batch, seq_len]`: region index of a concat memory token, else [`NO_SLOT`].
    pub region: Vec<i32>,
}

impl TokenBatch {
    /// An all-padding batch of the given size.
    pub fn zeros(batch: usize, seq_len: usize, feat_dim: usize) -> Self {
        Self {
            batch,
            seq_len,
            feat_dim,
            features: vec![0.0; batch * seq_len * feat_dim],
            kinds: vec![token_kind::TRANSITION; batch * seq_len],
            state_index: vec![0; batch * seq_len],
            lengths: vec![0; batch],
            target_action: vec![IGNORE; batch * seq_len],
            target_type: vec![IGNORE; batch * seq_len],
            visibility: vec![super::Visibility::Causal; batch],
            slot: vec![NO_SLOT; batch * seq_len],
            region: vec![NO_SLOT; batch * seq_len],
        }
    }

    /// Whether any token has a slot (the model needs a slot table).
    pub fn has_slots(&self) -> bool {
        self.slot.iter().any(|&s| s != NO_SLOT)
    }

    /// `[batch, seq_len]`: each token's position embedding index. Positions count the tokens
    /// without a slot, from 0 at the start of the sequence or, in a [`super::Chain`], of the
    /// token's block; a slot token gets 0 (its position is not embedded).
    pub fn positions(&self) -> Vec<usize> {
        let l = self.seq_len;
        let mut out = vec![0usize; self.batch * l];
        for b in 0..self.batch {
            let chain = match &self.visibility[b] {
                super::Visibility::Chain(c) => Some(c),
                _ => None,
            };
            let mut next = 0usize;
            for i in 0..l {
                if chain.is_some_and(|c| c.n_blocks() > 0 && c.start(c.block_of(i)) == i) {
                    next = 0;
                }
                if self.slot[b * l + i] == NO_SLOT {
                    out[b * l + i] = next;
                    next += 1;
                }
            }
        }
        out
    }

    /// Whether every sequence is causal (the model's unmasked fast path).
    pub fn is_causal(&self) -> bool {
        self.visibility.iter().all(super::Visibility::is_causal)
    }

    /// Number of supervised (action-labelled) positions.
    pub fn n_labels(&self) -> usize {
        self.target_action.iter().filter(|&&a| a != IGNORE).count()
    }
}
