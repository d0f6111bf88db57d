//! A [`TokenBatch`] packed for the native step: real tokens back to back, padding dropped.

use ccad_core::context::Visibility;
use ccad_core::tokens::{NO_SLOT, TokenBatch, slot_table};

use super::attention;
use super::chain::{self, PackedChain};
use crate::AdModelConfig;

/// The batch's real tokens, packed back to back (padding dropped).
pub(crate) struct Packed {
    /// `(first row, length)` of every non-empty sequence; a chain's blocks are sequences
    /// of their own.
    pub seqs: Vec<(usize, usize)>,
    /// Per sequence: `(first row, rows)` of the memory it reads in a layer's memory buffer
    /// (`rows` 0 outside chains).
    pub reads: Vec<(usize, usize)>,
    /// Rows of a layer's memory buffer.
    pub reads_total: usize,
    pub chains: Vec<PackedChain>,
    /// Per token: its slot-table rows (slot, region index), [`NO_SLOT`] where none.
    pub slot_rows: Vec<[i32; 2]>,
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
    let (c_heads, kinds_known) = (c.n_heads, c.kinds());
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
    assert_eq!(b.slot.len(), b.batch * l, "TokenBatch.slot length");
    assert_eq!(b.region.len(), b.batch * l, "TokenBatch.region length");
    let n: usize = b.lengths.iter().sum();
    let positions = b.positions();
    let mut p = Packed {
        seqs: Vec::new(),
        reads: Vec::new(),
        reads_total: 0,
        chains: Vec::new(),
        slot_rows: Vec::with_capacity(n),
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
        let first = p.kinds.len();
        match &b.visibility[s] {
            Visibility::Chain(chain) => {
                if let Err(e) = chain.validate(len) {
                    panic!("TokenBatch.visibility[{s}]: {e}");
                }
                let mut packed = PackedChain {
                    update: chain.update(),
                    slots: chain.slots(),
                    blocks: Vec::new(),
                    frozen: chain.frozen(),
                };
                for k in 0..chain.n_blocks() {
                    let block = chain.block_range(k, len);
                    let reads = packed.n_reads(k);
                    let memory = chain.memory_range(k).map(|m| first + m.start);
                    packed.blocks.push((p.seqs.len(), memory));
                    p.seqs.push((first + block.start, block.len()));
                    p.reads.push((p.reads_total, reads));
                    p.reads_total += reads;
                    p.probs_at.push(p.probs_total);
                    p.visibility.push(Visibility::Causal);
                    p.probs_total += chain::probs_len(c_heads, block.len(), reads);
                }
                p.chains.push(packed);
            }
            v => {
                p.seqs.push((first, len));
                p.reads.push((p.reads_total, 0));
                p.probs_at.push(p.probs_total);
                p.visibility.push(v.clone());
                p.probs_total += attention::probs_len(c_heads, len);
            }
        }
        for (r, &pos) in (row0..row0 + len).zip(&positions[row0..row0 + len]) {
            let kind = b.kinds[r];
            assert!(
                (kind as usize) < kinds_known,
                "TokenBatch.kinds: not a token_kind of this model"
            );
            let slot = b.slot[r];
            assert!(
                slot == NO_SLOT || (0..c.slots as i32).contains(&slot),
                "TokenBatch.slot outside the model's {} slots",
                c.slots
            );
            let region = b.region[r];
            p.slot_rows.push([
                if slot == NO_SLOT {
                    NO_SLOT
                } else {
                    slot_table::slot_row(slot as usize) as i32
                },
                if region < 0 {
                    NO_SLOT
                } else {
                    slot_table::region_row(region as usize) as i32
                },
            ]);
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
            assert!(
                pos < c.max_len,
                "TokenBatch: position {pos} past the model's max_len {}",
                c.max_len
            );
            p.position.push(pos);
            p.target_action.push(b.target_action[r]);
            p.target_type.push(b.target_type[r]);
        }
    }
    p
}
