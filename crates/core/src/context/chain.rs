//! [`Chain`]: a whole history in one sequence as a chain of blocks that see each other only
//! through memory tokens (DESIGN §5b, the memory layout).
//!
//! Block `b` is tokens `starts[b] .. starts[b+1]` (the last block runs to the sequence's end).
//! A closed block ends with its `M` memory tokens `M_b`. A token of block `b` attends to the
//! memory visible to `b`, then causally to its own block:
//! - [`MemoryUpdate::Concat`]: every memory token of blocks `j < b`, `M_0 … M_{b-1}` (`b·M`
//!   keys);
//! - [`MemoryUpdate::Merge`]: `M` slots whose key and value, at every layer, are the mean over
//!   `j < b` of slot `i`'s key and value in `M_j` (CCM-merge; `M` keys whatever `b` is).
//!
//! Blocks before [`Chain::frozen`] (a training chunk's entering history, `train_regions`)
//! are computed forward like the others, but the memory they give takes no gradient: the
//! engines pass no gradient back into their memory tokens (and they carry no labels).
//!
//! Engines compute this block by block (block-sparse), never as a dense mask over the chain.
//! [`Chain::reads`] spells out what a block reads, for reference computations and tests.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// How the memory a block reads combines the memory tokens of earlier blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryUpdate {
    /// Every earlier block's memory tokens, side by side (the context grows by `M` a region).
    Concat,
    /// `M` slots, each the running mean of that slot over earlier blocks.
    Merge,
}

/// One memory row a block reads: the weighted sum of the keys (and of the values) of the
/// listed tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRead {
    /// `(token, weight)`: tokens of the same sequence, all memory tokens of earlier blocks.
    pub sources: Vec<(usize, f32)>,
}

/// The block structure of a memory-layout sequence (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    update: MemoryUpdate,
    /// `M`: memory tokens of a closed block.
    slots: u32,
    /// Per block: its first token.
    starts: Vec<u32>,
    /// Per block: its first memory token, if it has its memory.
    memory: Vec<Option<u32>>,
    /// Blocks `0 .. frozen` give memory without gradient.
    frozen: u32,
}

impl Chain {
    /// An empty chain whose closed blocks carry `slots` memory tokens each.
    pub fn new(update: MemoryUpdate, slots: usize) -> Self {
        assert!(
            slots > 0,
            "a chain needs at least one memory token per block"
        );
        Self {
            update,
            slots: slots as u32,
            starts: Vec::new(),
            memory: Vec::new(),
            frozen: 0,
        }
    }

    /// Blocks `0 .. b` give their memory without gradient (set before or after opening them).
    pub fn freeze_before(&mut self, b: usize) {
        self.frozen = b as u32;
    }

    /// Blocks before this one take no gradient through their memory.
    pub fn frozen(&self) -> usize {
        self.frozen as usize
    }

    pub fn update(&self) -> MemoryUpdate {
        self.update
    }

    /// `M`.
    pub fn slots(&self) -> usize {
        self.slots as usize
    }

    pub fn n_blocks(&self) -> usize {
        self.starts.len()
    }

    /// Begin a block at token `start` (after every earlier block's tokens).
    pub fn open_block(&mut self, start: usize) {
        debug_assert!(self.starts.last().is_none_or(|&s| (s as usize) < start));
        self.starts.push(start as u32);
        self.memory.push(None);
    }

    /// The last block's memory tokens begin at token `at` (`M` of them, ending the block).
    pub fn set_memory(&mut self, at: usize) {
        let last = self.memory.last_mut().expect("set_memory before any block");
        *last = Some(at as u32);
    }

    /// First token of block `b`.
    pub fn start(&self, b: usize) -> usize {
        self.starts[b] as usize
    }

    /// Tokens of block `b` in a sequence of `len` tokens.
    pub fn block_range(&self, b: usize, len: usize) -> Range<usize> {
        let end = self.starts.get(b + 1).map_or(len, |&s| s as usize);
        self.start(b)..end
    }

    /// Block `b`'s memory tokens, if it has them.
    pub fn memory_range(&self, b: usize) -> Option<Range<usize>> {
        self.memory[b].map(|m| m as usize..m as usize + self.slots as usize)
    }

    /// The block holding token `i` (tokens past the last block's start belong to it).
    pub fn block_of(&self, i: usize) -> usize {
        self.starts
            .partition_point(|&s| s as usize <= i)
            .saturating_sub(1)
    }

    /// Blocks before `b` whose memory `b` reads.
    fn earlier_memory(&self, b: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..b).filter_map(|j| self.memory_range(j))
    }

    /// Memory rows block `b` reads, in key order (see the module docs).
    pub fn reads(&self, b: usize) -> Vec<MemoryRead> {
        match self.update {
            MemoryUpdate::Concat => self
                .earlier_memory(b)
                .flatten()
                .map(|t| MemoryRead {
                    sources: vec![(t, 1.0)],
                })
                .collect(),
            MemoryUpdate::Merge => {
                let blocks: Vec<Range<usize>> = self.earlier_memory(b).collect();
                if blocks.is_empty() {
                    return Vec::new();
                }
                let w = 1.0 / blocks.len() as f32;
                (0..self.slots())
                    .map(|i| MemoryRead {
                        sources: blocks.iter().map(|m| (m.start + i, w)).collect(),
                    })
                    .collect()
            }
        }
    }

    /// Number of memory rows block `b` reads.
    pub fn n_reads(&self, b: usize) -> usize {
        let earlier = self.earlier_memory(b).count();
        match self.update {
            MemoryUpdate::Concat => earlier * self.slots(),
            MemoryUpdate::Merge if earlier > 0 => self.slots(),
            MemoryUpdate::Merge => 0,
        }
    }

    /// Whether token `i`'s attention reads token `j` at all: `j ≤ i` in its block, or a
    /// memory token of an earlier block (under merge, through its slot's mean).
    pub fn reads_token(&self, i: usize, j: usize) -> bool {
        let (bi, bj) = (self.block_of(i), self.block_of(j));
        if bi == bj {
            return j <= i;
        }
        bj < bi && self.memory_range(bj).is_some_and(|m| m.contains(&j))
    }

    /// Check the chain against a sequence of `len` tokens: blocks start at 0 and increase,
    /// and each memory lies inside its block and ends it (the last block's may end the
    /// sequence).
    pub fn validate(&self, len: usize) -> Result<(), String> {
        if len > 0 && self.starts.first() != Some(&0) {
            return Err("chain: the first block must start at token 0".into());
        }
        if self.frozen() > self.n_blocks() {
            return Err(format!(
                "chain: {} frozen blocks of {}",
                self.frozen,
                self.n_blocks()
            ));
        }
        if self.starts.windows(2).any(|w| w[0] >= w[1]) {
            return Err("chain: block starts must increase".into());
        }
        for b in 0..self.n_blocks() {
            let block = self.block_range(b, len);
            if let Some(m) = self.memory_range(b)
                && (m.start <= block.start || m.end != block.end)
            {
                return Err(format!(
                    "chain: block {b} ({block:?}) must end with its memory ({m:?})"
                ));
            }
        }
        Ok(())
    }
}
