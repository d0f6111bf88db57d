//! burn's block-sparse pass over [`Chain`] sequences (the memory layout, DESIGN §5b): every
//! block of every sequence becomes a row of its own (`[B·NB, Lb]`, padded), so attention
//! costs each block its own length plus its memory, never the whole chain. At every layer
//! the memory a block reads is gathered from the keys and values of earlier blocks' memory
//! tokens: all of them (concat, later blocks masked) or a running mean per slot (merge: one
//! matrix product with a lower-triangular averaging matrix, no loop over regions).

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use ccad_core::context::{Chain, MemoryUpdate, Visibility};
use ccad_core::tokens::TokenBatch;

use crate::model::MASKED;

/// Host-side indices of a batch of chains, built once per batch.
pub(crate) struct ChainPlan {
    /// Sequences, blocks per sequence (padded), block rows' length, memory tokens per block.
    b: usize,
    nb: usize,
    lb: usize,
    m: usize,
    seq_len: usize,
    /// `[B·NB·Lb]`: token (`b·L + i`) at each block-row slot (0 at padding).
    gather: Tensor<1, Int>,
    /// `[B·L]`: block-row slot (`r·Lb + o`) of each token (0 at padding).
    scatter: Tensor<1, Int>,
    /// `[B·NB·M]`: block-row slot of block `k`'s memory token `i` (0 where none).
    memory: Tensor<1, Int>,
    /// Merge: `[B, NB, NB]`, row `k` = the weights of blocks `j < k` in block `k`'s means.
    mix: Option<Tensor<3>>,
    /// `[B, NB, 1]`: true for the blocks whose memory takes no gradient (`Chain::frozen`);
    /// `None` when no chain has any.
    frozen: Option<Tensor<3, Bool>>,
    /// `[B·NB, 1, Lb, R + Lb]`: what each block row sees (`R` memory rows, then itself).
    pub(crate) bias: Tensor<4>,
}

/// The chains of a batch, if its sequences are chains (all or none).
pub(crate) fn chains(batch: &TokenBatch) -> Option<Vec<&Chain>> {
    let chains: Vec<&Chain> = batch
        .visibility
        .iter()
        .filter_map(|v| match v {
            Visibility::Chain(c) => Some(c),
            _ => None,
        })
        .collect();
    if chains.is_empty() {
        return None;
    }
    assert_eq!(
        chains.len(),
        batch.batch,
        "TokenBatch: chained and unchained sequences in one batch"
    );
    Some(chains)
}

impl ChainPlan {
    pub(crate) fn new(batch: &TokenBatch, chains: &[&Chain], device: &Device) -> Self {
        let (b, l) = (batch.batch, batch.seq_len);
        let m = chains[0].slots();
        let update = chains[0].update();
        assert!(
            chains
                .iter()
                .all(|c| c.slots() == m && c.update() == update),
            "TokenBatch: chains with different memories in one batch"
        );
        for (s, c) in chains.iter().enumerate() {
            if let Err(e) = c.validate(batch.lengths[s]) {
                panic!("TokenBatch.visibility[{s}]: {e}");
            }
        }
        let nb = chains
            .iter()
            .map(|c| c.n_blocks())
            .max()
            .unwrap_or(0)
            .max(1);
        let lb = (0..b)
            .flat_map(|s| {
                let c = chains[s];
                (0..c.n_blocks()).map(move |k| c.block_range(k, batch.lengths[s]).len())
            })
            .max()
            .unwrap_or(0)
            .max(1);
        let reads = match update {
            MemoryUpdate::Concat => nb * m,
            MemoryUpdate::Merge => m,
        };
        let keys = reads + lb;
        let mut gather = vec![0i32; b * nb * lb];
        let mut scatter = vec![0i32; b * l];
        let mut memory = vec![0i32; b * nb * m];
        let mut has_memory = vec![false; b * nb];
        let mut bias = vec![MASKED; b * nb * lb * keys];
        let mut mix = vec![0.0f32; b * nb * nb];
        let mut frozen = vec![false; b * nb];
        for (s, c) in chains.iter().enumerate() {
            frozen[s * nb..s * nb + c.frozen()].fill(true);
            for k in 0..c.n_blocks() {
                let r = s * nb + k;
                let block = c.block_range(k, batch.lengths[s]);
                for (o, i) in block.clone().enumerate() {
                    gather[r * lb + o] = (s * l + i) as i32;
                    scatter[s * l + i] = (r * lb + o) as i32;
                }
                if let Some(mem) = c.memory_range(k) {
                    has_memory[r] = true;
                    for (i, t) in mem.enumerate() {
                        memory[r * m + i] = (r * lb + t - block.start) as i32;
                    }
                }
                // Its own block, causally; padding rows see their first key so that no row
                // is all masked.
                for o in 0..lb {
                    let row = &mut bias[(r * lb + o) * keys..][..keys];
                    for j in 0..=o.min(block.len().saturating_sub(1)) {
                        row[reads + j] = 0.0;
                    }
                }
            }
            // Memory rows each block reads.
            for k in 0..c.n_blocks() {
                let r = s * nb + k;
                let earlier: Vec<usize> = (0..k).filter(|&j| has_memory[s * nb + j]).collect();
                let visible: Vec<usize> = match update {
                    MemoryUpdate::Concat => earlier
                        .iter()
                        .flat_map(|&j| (0..m).map(move |i| j * m + i))
                        .collect(),
                    MemoryUpdate::Merge if earlier.is_empty() => Vec::new(),
                    MemoryUpdate::Merge => (0..m).collect(),
                };
                if update == MemoryUpdate::Merge {
                    for &j in &earlier {
                        mix[r * nb + j] = 1.0 / earlier.len() as f32;
                    }
                }
                for o in 0..lb {
                    let row = &mut bias[(r * lb + o) * keys..][..keys];
                    for &v in &visible {
                        row[v] = 0.0;
                    }
                }
            }
        }
        let ints = |v: Vec<i32>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        Self {
            b,
            nb,
            lb,
            m,
            seq_len: l,
            gather: ints(gather),
            scatter: ints(scatter),
            memory: ints(memory),
            mix: (update == MemoryUpdate::Merge)
                .then(|| Tensor::from_data(TensorData::new(mix, [b, nb, nb]), device)),
            frozen: frozen
                .contains(&true)
                .then(|| Tensor::<3, Bool>::from_data(TensorData::new(frozen, [b, nb, 1]), device)),
            bias: Tensor::from_data(TensorData::new(bias, [b * nb, 1, lb, keys]), device),
        }
    }

    /// `[B, L, d]` tokens → `[B·NB, Lb, d]` block rows.
    pub(crate) fn to_blocks(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        x.reshape([b * l, d])
            .select(0, self.gather.clone())
            .reshape([self.b * self.nb, self.lb, d])
    }

    /// `[B·NB, Lb, d]` block rows → `[B, L, d]` tokens.
    pub(crate) fn to_tokens(&self, x: Tensor<3>) -> Tensor<3> {
        let [r, lb, d] = x.dims();
        x.reshape([r * lb, d])
            .select(0, self.scatter.clone())
            .reshape([self.b, self.seq_len, d])
    }

    /// A layer's keys (or values) `[B·NB, H, Lb, dh]` with the memory each block reads in
    /// front: `[B·NB, H, R + Lb, dh]`.
    pub(crate) fn with_memory(&self, x: Tensor<4>) -> Tensor<4> {
        let [r, h, lb, dh] = x.dims();
        let (b, nb, m) = (self.b, self.nb, self.m);
        let rows = x.clone().swap_dims(1, 2).reshape([r * lb, h * dh]);
        let mem = rows
            .select(0, self.memory.clone())
            .reshape([b, nb, m * h * dh]);
        // Frozen blocks' memory enters the sum with its value but without its gradient.
        let mem = match &self.frozen {
            Some(frozen) => {
                let detached = mem.clone().detach();
                mem.mask_where(frozen.clone().expand([b, nb, m * h * dh]), detached)
            }
            None => mem,
        };
        let read = match &self.mix {
            // Block k's slot i: Σ_j mix[k, j] · (block j's slot i).
            Some(mix) => mix.clone().matmul(mem).reshape([r, m, h, dh]),
            // Every block sees every memory row; the bias hides later blocks'.
            None => mem
                .reshape([b, 1, nb * m * h * dh])
                .repeat_dim(1, nb)
                .reshape([r, nb * m, h, dh]),
        };
        Tensor::cat(vec![read.swap_dims(1, 2), x], 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccad_core::backend;
    use ccad_core::tokens::token_kind;

    /// One sequence of 3 blocks of 3 tokens, the last 2 of blocks 0 and 1 memory tokens.
    fn three_blocks(update: MemoryUpdate) -> TokenBatch {
        let mut chain = Chain::new(update, 2);
        for b in 0..3 {
            chain.open_block(3 * b);
            if b < 2 {
                chain.set_memory(3 * b + 1);
            }
        }
        let mut batch = TokenBatch::zeros(1, 9, 1);
        batch.lengths = vec![9];
        for i in [1, 2, 4, 5] {
            batch.kinds[i] = token_kind::MEMORY;
            batch.slot[i] = ((i - 1) % 3) as i32;
        }
        batch.visibility = vec![Visibility::Chain(chain)];
        batch
    }

    /// Keys `[3 blocks, 1 head, 3 tokens, 1]`: token `i` of block `b` holds `10·b + i`.
    fn keys(device: &Device) -> Tensor<4> {
        let v: Vec<f32> = (0..3)
            .flat_map(|b| (0..3).map(move |i| (10 * b + i) as f32))
            .collect();
        Tensor::from_data(TensorData::new(v, [3, 1, 3, 1]), device)
    }

    fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn merge_reads_slot_means_by_hand() {
        let device = backend::device();
        let batch = three_blocks(MemoryUpdate::Merge);
        let chains = super::chains(&batch).unwrap();
        let plan = ChainPlan::new(&batch, &chains, &device);
        // Block 0 reads nothing (its 2 rows are masked), block 1 reads block 0's memory
        // (keys 1, 2), block 2 the means of blocks 0 and 1: (1 + 11) / 2 = 6, (2 + 12) / 2 = 7.
        let got = host(plan.with_memory(keys(&device)));
        assert_eq!(
            got,
            [
                0., 0., 0., 1., 2., 1., 2., 10., 11., 12., 6., 7., 20., 21., 22.
            ]
        );
        let bias = plan.bias.into_data().try_to_vec::<f32>().unwrap();
        // Block 0's first row: memory hidden, its own first token seen.
        assert_eq!(&bias[..5], &[MASKED, MASKED, 0.0, MASKED, MASKED]);
        // Block 2's last row: both memory rows and its whole block.
        assert_eq!(&bias[bias.len() - 5..], &[0.0; 5]);
    }

    #[test]
    fn concat_reads_every_earlier_memory_token() {
        let device = backend::device();
        let batch = three_blocks(MemoryUpdate::Concat);
        let chains = super::chains(&batch).unwrap();
        let plan = ChainPlan::new(&batch, &chains, &device);
        // Every block gets all 6 memory rows (blocks 0, 1, 2's slots; block 2 has none, so
        // its rows read token 0 and stay hidden); the bias shows block k only j < k.
        let got = host(plan.with_memory(keys(&device)));
        let rows = [1., 2., 11., 12., 0., 0.];
        let want: Vec<f32> = (0..3)
            .flat_map(|b| {
                rows.iter()
                    .copied()
                    .chain((0..3).map(move |i| (10 * b + i) as f32))
            })
            .collect();
        assert_eq!(got, want);
        let bias = plan.bias.into_data().try_to_vec::<f32>().unwrap();
        let keys = 6 + 3;
        let row = |block: usize, o: usize| &bias[(block * 3 + o) * keys..][..keys];
        let m = MASKED;
        assert_eq!(row(0, 2), &[m, m, m, m, m, m, 0., 0., 0.]);
        assert_eq!(row(1, 0), &[0., 0., m, m, m, m, 0., m, m]);
        assert_eq!(row(2, 1), &[0., 0., 0., 0., m, m, 0., 0., m]);
    }
}
