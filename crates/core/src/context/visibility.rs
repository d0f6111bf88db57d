//! [`Visibility`]: which earlier tokens each token of a sequence may attend to.
//!
//! Every layout today is causal. The compressed-memory layouts will need a block structure
//! (e.g. memory tokens that see only their region, later tokens that see the memory but not
//! the dropped region); it is representable here so sequences can carry it. The model, its
//! caches and the batch writer implement only [`Visibility::Causal`] so far.

/// Attention pattern of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Token `i` sees tokens `0..=i`.
    #[default]
    Causal,
    /// Token `i` sees token `j ≤ i` iff both are in the same block, or `sees[block[i]]`
    /// lists `block[j]` (causal inside and across visible blocks).
    Blocks {
        /// Per token: its block number.
        block: Vec<u32>,
        /// Per block: the other blocks its tokens see.
        sees: Vec<Vec<u32>>,
    },
}

impl Visibility {
    /// Whether token `i` may attend to token `j`.
    pub fn allows(&self, i: usize, j: usize) -> bool {
        if j > i {
            return false;
        }
        match self {
            Visibility::Causal => true,
            Visibility::Blocks { block, sees } => {
                let (bi, bj) = (block[i], block[j]);
                bi == bj || sees[bi as usize].contains(&bj)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_sees_the_past_only() {
        let v = Visibility::Causal;
        assert!(v.allows(3, 0) && v.allows(3, 3));
        assert!(!v.allows(2, 3));
    }

    #[test]
    fn blocks_hide_what_is_not_listed() {
        // Tokens 0..3 a region (block 0), 3..5 its memory (block 1, sees block 0), 5..7 later
        // tokens (block 2, see the memory but not the region).
        let v = Visibility::Blocks {
            block: vec![0, 0, 0, 1, 1, 2, 2],
            sees: vec![vec![], vec![0], vec![1]],
        };
        assert!(v.allows(2, 0) && !v.allows(0, 2));
        assert!(v.allows(4, 1) && v.allows(4, 3));
        assert!(v.allows(6, 4) && v.allows(6, 5));
        assert!(!v.allows(6, 2) && !v.allows(5, 0));
    }
}
