//! [`Token`]: one context entry as evaluation holds it, how a step's tokens are built, and
//! packing token lists into the model's [`TokenBatch`] input.

use super::tokens::{
    NO_SLOT, PrevTransition, TokenBatch, dense_feature_dim, dense_features, token_kind,
    transition_feature_dim, transition_features,
};

/// One position of a context.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A transition's features `concat(s, one_hot(a), r, s')`, or a dense-layout token's
    /// features, length `feat_dim`.
    Transition(Vec<f32>),
    /// `<c>`: a region opens.
    Open,
    /// `</c>`: a region closes.
    Close,
    /// The query `q(s_t)`: the discrete state index.
    Query(usize),
    /// Memory token `<m_slot>` of a closed region; `region`: the region's index, embedded
    /// under concat (`None` under merge).
    Memory { slot: usize, region: Option<usize> },
    /// A kept dense token of a dropped region (its features) and its index among the kept.
    Kept { features: Vec<f32>, slot: usize },
}

impl Token {
    /// The transition token of `(s, a, r, s')`.
    pub fn transition(s: &[i32], a: usize, r: f32, s_next: &[i32], n_actions: usize) -> Self {
        let mut f = vec![0.0; transition_feature_dim(s.len(), n_actions)];
        transition_features(s, a, r, s_next, n_actions, &mut f);
        Token::Transition(f)
    }

    /// Its [`token_kind`].
    pub fn kind(&self) -> u8 {
        match self {
            Token::Transition(_) => token_kind::TRANSITION,
            Token::Open => token_kind::OPEN,
            Token::Close => token_kind::CLOSE,
            Token::Query(_) => token_kind::QUERY,
            Token::Memory { .. } => token_kind::MEMORY,
            Token::Kept { .. } => token_kind::KEPT,
        }
    }

    /// Its slot, for memory and kept tokens.
    pub fn slot(&self) -> Option<usize> {
        match self {
            Token::Memory { slot, .. } | Token::Kept { slot, .. } => Some(*slot),
            _ => None,
        }
    }

    /// Its transition features, for transition and kept tokens.
    pub fn features(&self) -> Option<&[f32]> {
        match self {
            Token::Transition(f) | Token::Kept { features: f, .. } => Some(f),
            _ => None,
        }
    }
}

/// The dense-layout token of a step (DESIGN §5a): the environment's previous transition
/// (`None` at its first step; after an episode end, the terminal transition with
/// `done = true`) and the state `s` the next action is taken from.
pub fn dense_token(prev: Option<PrevTransition<'_>>, s: &[i32], n_actions: usize) -> Token {
    let mut f = vec![0.0; dense_feature_dim(s.len(), n_actions)];
    dense_features(prev, s, n_actions, &mut f);
    Token::Transition(f)
}

/// Pack token lists into a left-aligned, right-padded [`TokenBatch`] without labels
/// (`seq_len` = the longest list).
///
/// # Panics
/// If a transition's features are not `feat_dim` long.
pub fn batch_from_tokens<C: AsRef<[Token]>>(contexts: &[C], feat_dim: usize) -> TokenBatch {
    let seq_len = contexts.iter().map(|c| c.as_ref().len()).max().unwrap_or(0);
    let mut batch = TokenBatch::zeros(contexts.len(), seq_len, feat_dim);
    for (b, context) in contexts.iter().enumerate() {
        let context = context.as_ref();
        batch.lengths[b] = context.len();
        for (i, token) in context.iter().enumerate() {
            let p = b * seq_len + i;
            batch.kinds[p] = token.kind();
            if let Some(f) = token.features() {
                assert_eq!(
                    f.len(),
                    feat_dim,
                    "transition token has {} features, the model takes {feat_dim}",
                    f.len()
                );
                batch.features[p * feat_dim..(p + 1) * feat_dim].copy_from_slice(f);
            }
            match token {
                Token::Query(s) => batch.state_index[p] = *s as i32,
                Token::Memory { slot, region } => {
                    batch.slot[p] = *slot as i32;
                    batch.region[p] = region.map_or(NO_SLOT, |r| r as i32);
                }
                Token::Kept { slot, .. } => batch.slot[p] = *slot as i32,
                Token::Transition(_) | Token::Open | Token::Close => {}
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::tokens::IGNORE;

    #[test]
    fn packs_left_aligned_with_padding() {
        // obs_dim 1, 2 actions → feat_dim 2·1 + 2 + 1 = 5: s=3, a=1, r=0.5, s'=4 → [3, 0, 1, 0.5, 4].
        let t = Token::transition(&[3], 1, 0.5, &[4], 2);
        assert_eq!(t, Token::Transition(vec![3.0, 0.0, 1.0, 0.5, 4.0]));
        let a = vec![Token::Open, t.clone(), Token::Query(7)];
        let b = vec![Token::Open, Token::Close];
        let batch = batch_from_tokens(&[a, b], 5);
        assert_eq!((batch.batch, batch.seq_len, batch.feat_dim), (2, 3, 5));
        assert_eq!(batch.lengths, vec![3, 2]);
        assert_eq!(
            batch.kinds,
            vec![
                token_kind::OPEN,
                token_kind::TRANSITION,
                token_kind::QUERY,
                token_kind::OPEN,
                token_kind::CLOSE,
                token_kind::TRANSITION
            ]
        );
        assert_eq!(batch.state_index, vec![0, 0, 7, 0, 0, 0]);
        assert_eq!(&batch.features[5..10], &[3.0, 0.0, 1.0, 0.5, 4.0]);
        assert!(
            batch.features[..5]
                .iter()
                .chain(&batch.features[10..])
                .all(|&x| x == 0.0)
        );
        assert!(batch.target_action.iter().all(|&x| x == IGNORE));
    }

    #[test]
    fn dense_token_features() {
        // Dark Room (obs 2, 5 actions): 3·2 + 5 + 2 = 13 features.
        // First step: zeros but s_t = (2, 3).
        let Token::Transition(f) = dense_token(None, &[2, 3], 5) else {
            panic!("not a transition")
        };
        assert_eq!(f, [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 2., 3.]);
        // After an episode end: s (1, 4) -a3, r 1-> s' (0, 4), done, reset state (2, 2):
        // [s 1 4 | one_hot 0 0 0 1 0 | r 1 | s' 0 4 | done 1 | s_t 2 2].
        let prev = PrevTransition {
            s: &[1, 4],
            a: 3,
            r: 1.0,
            s_next: &[0, 4],
            done: true,
        };
        let Token::Transition(f) = dense_token(Some(prev), &[2, 2], 5) else {
            panic!("not a transition")
        };
        assert_eq!(f, [1., 4., 0., 0., 0., 1., 0., 1., 0., 4., 1., 2., 2.]);
    }
}
