//! burn's block-sparse chain pass (the memory layout) against an independent dense-mask
//! pass, and what a chain lets each token see.

use burn::tensor::Tensor;
use ccad_core::backend;
use ccad_core::config::ModelConfig;
use ccad_core::context::MemoryUpdate;
use ccad_core::tokens::TokenBatch;

use crate::memory_fixture::{FEAT, Histories, chain_batch, layout};
use crate::{AdModel, AdModelConfig};

/// The default model shape (d 64, 4 layers, 4 heads, ff 256) over a memory layout.
pub(crate) fn memory_model(max_len: usize, slots: usize, seed: u64) -> (AdModel, AdModelConfig) {
    let model = ModelConfig {
        dropout: 0.0,
        ..ModelConfig::default()
    };
    let cfg = AdModelConfig::new(&model, FEAT, 81, 5, max_len).with_slots(slots);
    let device = backend::device();
    backend::seed_device(&device, seed);
    (cfg.init(&device), cfg)
}

fn logits(model: &AdModel, batch: &TokenBatch, block_sparse: bool) -> Vec<f32> {
    let device = backend::device();
    let h = model.hidden_with(batch, &device, block_sparse);
    let a: Tensor<3> = model.heads(h).action;
    a.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn block_sparse_concat_equals_the_dense_mask() {
    // A shipped history's shape: 13 regions of 80 steps, M = 4 (2,140 tokens).
    let (layout, max_len) = layout(80, 4, MemoryUpdate::Concat);
    let view = Histories::new(1, 13, 80, 3);
    let batch = chain_batch(&view, &layout);
    assert_eq!(batch.seq_len, 1 + 80 + 1 + 4 + 12 * (2 * 80 + 4 + 4));
    let (model, _) = memory_model(max_len, 4, 1);
    let sparse = logits(&model, &batch, true);
    let dense = logits(&model, &batch, false);
    let worst = sparse
        .iter()
        .zip(&dense)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "block-sparse vs dense mask: {worst}");
}

#[test]
fn a_chain_sees_no_later_token_and_reads_dropped_regions_through_memory() {
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let (layout, max_len) = layout(10, 2, update);
        let view = Histories::new(1, 6, 10, 5);
        let batch = chain_batch(&view, &layout);
        let (model, _) = memory_model(max_len, 2, 2);
        let base = logits(&model, &batch, true);
        let ccad_core::context::Visibility::Chain(chain) = &batch.visibility[0] else {
            panic!("not a chain")
        };
        // Change one C token of block 2 (region 2).
        let t = chain.start(2) + 1 + 10 + 2 + 3;
        let mut changed = batch.clone();
        for f in &mut changed.features[t * FEAT..(t + 1) * FEAT] {
            *f += 0.5;
        }
        let after = logits(&model, &changed, true);
        let a = 5;
        let diff = |i: usize| {
            (0..a)
                .map(|k| (base[i * a + k] - after[i * a + k]).abs())
                .fold(0.0f32, f32::max)
        };
        for i in 0..t {
            assert_eq!(
                diff(i),
                0.0,
                "{update:?}: token {i} saw the later token {t}"
            );
        }
        assert!(diff(t) > 1e-4, "{update:?}: the token itself");
        // Block 4 holds regions 3 and 4: region 2 reaches it only through memory.
        let block4 = chain.block_range(4, batch.lengths[0]);
        let most = block4.map(diff).fold(0.0f32, f32::max);
        assert!(most > 1e-5, "{update:?}: memory carried nothing ({most})");
    }
}

/// Teacher forcing: a history's own steps fed through the rolling evaluation context (its
/// appends, memory folds and block changes) and the native key/value-cache decoder give,
/// at every supervised position, the logits of the one-pass training forward — native and
/// burn's — within 1e-4, through the native and burn's key/value caches. Keys or values
/// computed in the wrong context would not.
#[test]
fn teacher_forcing_decoders_equal_one_pass() {
    use crate::Decoder;
    use crate::decode::RowTokens;
    use crate::native::{NativeDecoder, NativeNet};
    use ccad_core::context::{HistoryView, Layout, RollingContext};

    let view = Histories::new(1, 13, 20, 9);
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let (layout, max_len) = layout(20, 3, update);
        let batch = chain_batch(&view, &layout);
        let (model, cfg) = memory_model(max_len, 3, 7);
        let net = NativeNet::from_model(&model).unwrap();
        let one_pass = net.action_logits(&batch);
        let burn = logits(&model, &batch, true);
        let a = cfg.n_actions;
        for (i, (x, y)) in one_pass.iter().zip(&burn).enumerate() {
            assert!(
                (x - y).abs() < 1e-4,
                "{update:?}: native vs burn one pass at {i}"
            );
        }

        for native in [true, false] {
            let device = backend::device();
            let mut decoder: Box<dyn Decoder> = if native {
                Box::new(NativeDecoder::new(&model, 1).unwrap())
            } else {
                Box::new(crate::BurnCacheDecoder::new(&model, 1, &device))
            };
            let mut ctx = RollingContext::new(Layout::new(layout.clone()));
            let (mut action, mut types) = (vec![0.0; a], vec![0.0; 3]);
            let range = view.history_range(0);
            let (mut unchanged, mut checked) = (0, 0);
            ctx.begin(view.state(range.start), a);
            for g in range.clone() {
                let row = RowTokens {
                    context: ctx.tokens(),
                    last: None,
                    unchanged,
                    visibility: ctx.visibility(),
                };
                decoder.decode(&[row], &mut action, &mut types);
                unchanged = ctx.len();
                let at = ctx.len() - 1;
                assert_eq!(batch.target_action[at], view.action(g) as i32);
                for k in 0..a {
                    let want = one_pass[at * a + k];
                    assert!(
                        (action[k] - want).abs() < 1e-4,
                        "{update:?} native {native}: transition {g}, token {at}: decoder {} vs one pass {want}",
                        action[k]
                    );
                }
                checked += 1;
                if g + 1 < range.end {
                    ctx.observe(view.prev(g), view.state(g + 1), a, false);
                }
            }
            assert_eq!(checked, 13 * 20);
        }
    }
}

/// The selective baseline (`keep = "rewarded"`): teacher forcing through both key/value
/// caches against the one-pass forward of each region's sequence (kept prefix, then the
/// block), within 1e-4; and native against burn's one pass.
#[test]
fn teacher_forcing_keep_equals_one_pass() {
    use crate::Decoder;
    use crate::decode::RowTokens;
    use crate::memory_fixture::keep_batch;
    use crate::native::{NativeDecoder, NativeNet};
    use ccad_core::context::{ContextLayout, HistoryView, KeepDense, Layout, RollingContext};

    let (interval, keep_max) = (10, 6);
    let view = Histories::new(1, 8, interval, 13);
    let layout = KeepDense::new(interval, keep_max, 2, 5);
    let batch = keep_batch(&view, &layout);
    let (model, cfg) = memory_model(layout.max_len(), keep_max, 3);
    let net = NativeNet::from_model(&model).unwrap();
    let a = cfg.n_actions;
    let burn = logits(&model, &batch, true);
    let native = net.action_logits(&batch);
    // Packed native logits: sequence by sequence, padding dropped.
    let l = batch.seq_len;
    let mut packed_at = Vec::new();
    for (b, &len) in batch.lengths.iter().enumerate() {
        packed_at.extend((0..len).map(|i| b * l + i));
    }
    for (k, &p) in packed_at.iter().enumerate() {
        for j in 0..a {
            let (x, y) = (native[k * a + j], burn[p * a + j]);
            assert!((x - y).abs() < 1e-4, "native vs burn one pass at {p}");
        }
    }
    assert!(
        batch.slot.iter().any(|&s| s >= 0),
        "nothing kept: the test keeps nothing"
    );

    let device = backend::device();
    for native_decoder in [true, false] {
        let mut decoder: Box<dyn Decoder> = if native_decoder {
            Box::new(NativeDecoder::new(&model, 1).unwrap())
        } else {
            Box::new(crate::BurnCacheDecoder::new(&model, 1, &device))
        };
        let mut ctx = RollingContext::new(Layout::new(layout));
        let range = view.history_range(0);
        let (mut action, mut types) = (vec![0.0; a], vec![0.0; 3]);
        let mut unchanged = 0;
        let mut event = ctx.begin(view.state(range.start), a);
        for g in range.clone() {
            if g > range.start {
                unchanged = event.unchanged(ctx.len());
            }
            let row = RowTokens {
                context: ctx.tokens(),
                last: None,
                unchanged,
                visibility: ctx.visibility(),
            };
            decoder.decode(&[row], &mut action, &mut types);
            let (r, at) = (view.region_of(g), ctx.len() - 1);
            assert_eq!(batch.target_action[r * l + at], view.action(g) as i32);
            for j in 0..a {
                let want = burn[(r * l + at) * a + j];
                assert!(
                    (action[j] - want).abs() < 1e-4,
                    "native {native_decoder}: transition {g}: decoder {} vs one pass {want}",
                    action[j]
                );
            }
            if g + 1 < range.end {
                event = ctx.observe(view.prev(g), view.state(g + 1), a, false);
            }
        }
    }
}
