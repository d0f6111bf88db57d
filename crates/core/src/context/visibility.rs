//! [`Visibility`]: which earlier tokens each token of a sequence may attend to.
//!
//! Window and compressed layouts are causal. `Blocks` is a dense per-sequence pattern (memory
//! tokens that see only their region, later tokens that see the memory but not the dropped
//! region); the model's full pass and training step (burn and native), both key/value caches
//! and the full re-run apply it, and a causal sequence takes their unmasked fast paths.
//! `Chain` is the memory layout's block-sparse structure ([`Chain`]), computed block by block.

use super::chain::Chain;

/// Attention pattern of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Token `i` sees tokens `0..=i`.
    #[default]
    Causal,
    /// Token `i` sees token `j ≤ i` iff both are in the same block, or `sees[block[i]]`
    /// lists `block[j]` (causal inside and across visible blocks). Tokens past the end of
    /// `block` belong to its last block, so a query or a token appended after the pattern
    /// was set sees what that block sees.
    Blocks {
        /// Per token: its block number (non-decreasing is not required).
        block: Vec<u32>,
        /// Per block: the other blocks its tokens see.
        sees: Vec<Vec<u32>>,
    },
    /// A whole history as a chain of blocks that read each other only through memory tokens
    /// (the memory layout, [`Chain`]). Under `merge` a block reads slot means, not tokens:
    /// [`allows`](Self::allows) then says which tokens feed what a token reads.
    Chain(Chain),
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
                let (bi, bj) = (Self::block_at(block, i), Self::block_at(block, j));
                bi == bj || sees[bi as usize].contains(&bj)
            }
            Visibility::Chain(chain) => chain.reads_token(i, j),
        }
    }

    /// Keys token `i` attends to: `i + 1` causally, the tokens it sees under `Blocks`, and
    /// under a chain its block's memory rows (slots under merge) plus its block up to `i`.
    pub fn keys_read(&self, i: usize) -> usize {
        match self {
            Visibility::Causal => i + 1,
            Visibility::Blocks { .. } => (0..=i).filter(|&j| self.allows(i, j)).count(),
            Visibility::Chain(chain) => {
                let b = chain.block_of(i);
                chain.n_reads(b) + i - chain.start(b) + 1
            }
        }
    }

    pub fn is_causal(&self) -> bool {
        matches!(self, Visibility::Causal)
    }

    /// `out[j]` = whether token `i` sees token `j`, for `j < out.len()`.
    pub fn key_mask(&self, i: usize, out: &mut [bool]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.allows(i, j);
        }
    }

    /// Check the pattern against a sequence of `len` tokens: every block number has its
    /// `sees` entry and every listed block exists.
    pub fn validate(&self, len: usize) -> Result<(), String> {
        let (block, sees) = match self {
            Visibility::Causal => return Ok(()),
            Visibility::Chain(chain) => return chain.validate(len),
            Visibility::Blocks { block, sees } => (block, sees),
        };
        if block.is_empty() && len > 0 {
            return Err(format!("visibility: no block for {len} tokens"));
        }
        let n = sees.len() as u32;
        if let Some(b) = block.iter().chain(sees.iter().flatten()).find(|&&b| b >= n) {
            return Err(format!("visibility: block {b} named, only {n} blocks"));
        }
        Ok(())
    }

    fn block_at(block: &[u32], i: usize) -> u32 {
        block.get(i).or(block.last()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens 0..3 a region (block 0), 3..5 its memory (block 1, sees block 0), 5..7 later
    /// tokens (block 2, see the memory but not the region).
    fn memory_pattern() -> Visibility {
        Visibility::Blocks {
            block: vec![0, 0, 0, 1, 1, 2, 2],
            sees: vec![vec![], vec![0], vec![1]],
        }
    }

    #[test]
    fn causal_sees_the_past_only() {
        let v = Visibility::Causal;
        assert!(v.allows(3, 0) && v.allows(3, 3));
        assert!(!v.allows(2, 3));
    }

    #[test]
    fn blocks_hide_what_is_not_listed() {
        let v = memory_pattern();
        assert!(v.allows(2, 0) && !v.allows(0, 2));
        assert!(v.allows(4, 1) && v.allows(4, 3));
        assert!(v.allows(6, 4) && v.allows(6, 5));
        assert!(!v.allows(6, 2) && !v.allows(5, 0));
    }

    #[test]
    fn tokens_past_the_pattern_join_its_last_block() {
        let v = memory_pattern();
        let mut mask = [false; 9];
        v.key_mask(8, &mut mask);
        // Token 8 is in block 2: it sees the memory (3, 4), block 2 (5..=8), not the region.
        assert_eq!(
            mask,
            [false, false, false, true, true, true, true, true, true]
        );
        v.key_mask(1, &mut mask);
        assert_eq!(
            mask,
            [true, true, false, false, false, false, false, false, false]
        );
    }

    #[test]
    fn validate_names_a_missing_block() {
        assert!(memory_pattern().validate(7).is_ok());
        let bad = Visibility::Blocks {
            block: vec![0, 1],
            sees: vec![vec![]],
        };
        assert_eq!(
            bad.validate(2).unwrap_err(),
            "visibility: block 1 named, only 1 blocks"
        );
        assert!(Visibility::Causal.validate(5).is_ok());
    }
}
