//! The native step against burn's autodiff, and its dropout.

use burn::module::Module;
use ccad_core::backend;
use ccad_core::context::Visibility;
use ccad_core::tokens::{IGNORE, TokenBatch, token_kind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use ccad_core::kernels::dropout::Dropout;

fn config(dropout: f64) -> AdModelConfig {
    AdModelConfig {
        feat_dim: 10,
        n_states: 81,
        n_actions: 5,
        max_len: 20,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        dropout,
        attention_dropout: dropout,
        type_loss_weight: 0.3,
        token_types: 3,
        slots: 0,
    }
}

fn model(config: &AdModelConfig, seed: u64) -> (AdModel, Device) {
    let device = backend::autodiff_device();
    backend::seed_device(&device, seed);
    (config.init(&device), device)
}

/// Random padded batch: every token kind, features only on transitions, state indices only on
/// queries, labels on about half of the real positions, padding after each length (one row
/// empty).
fn batch(seed: u64, lengths: &[usize], seq_len: usize) -> TokenBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f = 10;
    let mut b = TokenBatch::zeros(lengths.len(), seq_len, f);
    b.lengths = lengths.to_vec();
    for (s, &len) in lengths.iter().enumerate() {
        for i in 0..len {
            let r = s * seq_len + i;
            let kind = rng.random_range(0..4u8);
            b.kinds[r] = kind;
            if kind == token_kind::TRANSITION {
                for v in &mut b.features[r * f..(r + 1) * f] {
                    *v = rng.random_range(-1.0..1.0);
                }
            }
            if kind == token_kind::QUERY {
                b.state_index[r] = rng.random_range(0..81);
            }
            if rng.random_bool(0.5) {
                b.target_action[r] = rng.random_range(0..5);
            }
            if rng.random_bool(0.7) {
                b.target_type[r] = rng.random_range(0..3);
            }
        }
    }
    b
}

fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{name}[{i}]: native {g}, burn {w}"
        );
    }
}

#[test]
fn loss_and_every_gradient_match_burn() {
    let cfg = config(0.0);
    let (m, device) = model(&cfg, 3);
    let b = batch(7, &[20, 13, 0, 1, 7], 20);
    let (want, want_g) = reference_loss_and_grads(&m, &b, &device);
    let net = NativeNet::from_model(&m).unwrap();
    let mut g = vec![f32::NAN; net.n_params()];
    let got = net.loss_and_grads(&b, 0, &mut g);
    assert_eq!(got.n_action, want.n_action);
    assert_eq!(got.n_token_type, want.n_token_type);
    assert!((got.total - want.total).abs() < 1e-5, "{got:?} vs {want:?}");
    assert!((got.action - want.action).abs() < 1e-5);
    assert!((got.token_type - want.token_type).abs() < 1e-5);
    assert_eq!(got.acc_action, want.acc_action);
    assert_eq!(got.acc_token_type, want.acc_token_type);
    // Every tensor gets a gradient, and each matches burn's.
    for slot in net.slots() {
        let r = slot.offset..slot.offset + slot.len;
        assert!(
            want_g[r.clone()].iter().any(|&v| v != 0.0),
            "{}: burn's gradient is all zero, the batch does not exercise it",
            slot.name
        );
        assert_close(&slot.name, &g[r.clone()], &want_g[r], 2e-4);
    }
    // Inference loss = the same loss without gradients.
    let eval = net.loss(&b);
    assert!((eval.total - got.total).abs() < 1e-6);
}

#[test]
fn padding_and_batch_order_do_not_matter() {
    // Packing drops padding: the same sequences padded to another length give the same loss
    // and gradient (up to summation order).
    let cfg = config(0.0);
    let (m, _) = model(&cfg, 5);
    let net = NativeNet::from_model(&m).unwrap();
    let short = batch(9, &[6, 4], 6);
    let mut long = TokenBatch::zeros(2, 11, 10);
    long.lengths = short.lengths.clone();
    for s in 0..2 {
        for i in 0..6 {
            let (a, b) = (s * 6 + i, s * 11 + i);
            long.kinds[b] = short.kinds[a];
            long.state_index[b] = short.state_index[a];
            long.target_action[b] = short.target_action[a];
            long.target_type[b] = short.target_type[a];
            long.features[b * 10..(b + 1) * 10]
                .copy_from_slice(&short.features[a * 10..(a + 1) * 10]);
        }
    }
    let (mut g1, mut g2) = (vec![0.0; net.n_params()], vec![0.0; net.n_params()]);
    let l1 = net.loss_and_grads(&short, 0, &mut g1);
    let l2 = net.loss_and_grads(&long, 0, &mut g2);
    assert!((l1.total - l2.total).abs() < 1e-6);
    assert_close("grads", &g1, &g2, 1e-5);
}

#[test]
fn round_trip_through_burn_keeps_every_parameter() {
    let cfg = config(0.1);
    let (m, _) = model(&cfg, 11);
    let mut net = NativeNet::from_model(&m).unwrap();
    // Change every parameter, convert to burn and back.
    for (i, v) in net.params_mut().iter_mut().enumerate() {
        *v += (i % 7) as f32 * 0.01;
    }
    let back = NativeNet::from_model(&net.to_model(&backend::device())).unwrap();
    assert_eq!(back.params(), net.params());
    assert_eq!(back.slots(), net.slots());
    assert_eq!(net.n_params(), m.num_params());
}

#[test]
fn dropout_masks_depend_on_the_seed_alone() {
    let cfg = config(0.3);
    let (m, _) = model(&cfg, 13);
    let net = NativeNet::from_model(&m).unwrap();
    let b = batch(17, &[12, 9], 12);
    let mut g = [
        vec![0.0; net.n_params()],
        vec![0.0; net.n_params()],
        vec![0.0; net.n_params()],
    ];
    let a = net.loss_and_grads(&b, 1, &mut g[0]);
    let a2 = net.loss_and_grads(&b, 1, &mut g[1]);
    let c = net.loss_and_grads(&b, 2, &mut g[2]);
    assert_eq!(a.total, a2.total);
    assert_eq!(g[0], g[1]);
    assert_ne!(a.total, c.total);
    assert_ne!(g[0], g[2]);
    // Inference ignores dropout: the same as a dropout-free model's training loss.
    let plain = {
        let mut n0 = net.clone();
        n0.config.dropout = 0.0;
        n0.config.attention_dropout = 0.0;
        n0.loss_and_grads(&b, 1, &mut g[2])
    };
    assert!((net.loss(&b).total - plain.total).abs() < 1e-6);
}

#[test]
fn dropout_keeps_the_right_share_scaled_up() {
    let site = Dropout::new(0.25, Some(42)).unwrap().site(3);
    let n = 200_000u32;
    let factors: Vec<f32> = (0..n).map(|i| site.factor(i)).collect();
    let kept = factors.iter().filter(|&&f| f != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.75).abs() < 0.005, "kept {kept}");
    assert!(
        factors
            .iter()
            .all(|&f| f == 0.0 || (f - 1.0 / 0.75).abs() < 1e-6)
    );
    assert!(Dropout::new(0.0, Some(1)).is_none());
    assert!(Dropout::new(0.5, None).is_none());
}

#[test]
fn gradient_with_dropout_matches_finite_differences() {
    // With the masks fixed by the seed the loss is a smooth function of the parameters: its
    // directional derivative along a random direction equals the gradient's projection.
    let cfg = config(0.2);
    let (m, _) = model(&cfg, 19);
    let net = NativeNet::from_model(&m).unwrap();
    let b = batch(23, &[10, 8, 5], 10);
    let mut g = vec![0.0; net.n_params()];
    net.loss_and_grads(&b, 5, &mut g);
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let dir: Vec<f32> = (0..net.n_params())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt();
    let eps = 1e-2 / norm;
    let at = |sign: f32| {
        let mut n = net.clone();
        n.params_mut()
            .iter_mut()
            .zip(&dir)
            .for_each(|(p, d)| *p += sign * eps * d);
        let mut scratch = vec![0.0; n.n_params()];
        n.loss_and_grads(&b, 5, &mut scratch).total as f64
    };
    let numeric = (at(1.0) - at(-1.0)) / (2.0 * eps as f64);
    let analytic: f64 = g.iter().zip(&dir).map(|(g, d)| (g * d) as f64).sum();
    assert!(
        (numeric - analytic).abs() < 0.02 * analytic.abs().max(1e-3),
        "finite difference {numeric}, gradient {analytic}"
    );
}

#[test]
fn labels_on_padding_are_refused() {
    let cfg = config(0.0);
    let (m, _) = model(&cfg, 1);
    let net = NativeNet::from_model(&m).unwrap();
    let mut b = batch(1, &[3, 2], 4);
    b.target_action[3] = 1; // position 3 of a 3-token sequence
    let err = std::panic::catch_unwind(|| net.loss(&b)).unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(msg.contains("past the sequence's length"), "{msg}");
    assert_eq!(b.target_type[3], IGNORE);
}

#[test]
fn a_batch_without_tokens_has_zero_loss_and_gradient() {
    let cfg = config(0.1);
    let (m, device) = model(&cfg, 2);
    let net = NativeNet::from_model(&m).unwrap();
    let b = batch(3, &[0, 0], 5);
    let mut g = vec![1.0; net.n_params()];
    let got = net.loss_and_grads(&b, 4, &mut g);
    assert_eq!((got.total, got.n_action, got.n_token_type), (0.0, 0, 0));
    assert!(g.iter().all(|&v| v == 0.0));
    // burn agrees on the loss.
    let (want, _) = reference_loss_and_grads(&m, &b, &device);
    assert_eq!(want.total, 0.0);
}

#[test]
fn every_gradient_matches_burn_at_the_default_shape() {
    // d 64, 4 layers, 4 heads, ff 256 over 323 tokens: gemm's parallel path and the
    // multi-chunk reductions (more than 256 rows) run.
    let cfg = AdModelConfig {
        max_len: 163,
        d_model: 64,
        n_layers: 4,
        n_heads: 4,
        d_ff: 256,
        ..config(0.0)
    };
    let (m, device) = model(&cfg, 13);
    let b = batch(17, &[163, 100, 60], 163);
    let (want, want_g) = reference_loss_and_grads(&m, &b, &device);
    let net = NativeNet::from_model(&m).unwrap();
    let mut g = vec![f32::NAN; net.n_params()];
    let got = net.loss_and_grads(&b, 0, &mut g);
    assert_eq!(
        (got.n_action, got.n_token_type),
        (want.n_action, want.n_token_type)
    );
    assert!((got.total - want.total).abs() < 1e-5, "{got:?} vs {want:?}");
    for slot in net.slots() {
        let r = slot.offset..slot.offset + slot.len;
        assert_close(&slot.name, &g[r.clone()], &want_g[r], 5e-4);
    }
}

#[test]
fn every_gradient_matches_burn_under_block_visibility() {
    // The default shape over 323 tokens, one sequence with a compressed memory's pattern, one
    // with isolated blocks, one causal: the native step's masked softmax against burn's
    // additive bias, gradients included.
    let cfg = AdModelConfig {
        max_len: 163,
        d_model: 64,
        n_layers: 4,
        n_heads: 4,
        d_ff: 256,
        ..config(0.0)
    };
    let (m, device) = model(&cfg, 23);
    let mut b = batch(29, &[163, 100, 60], 163);
    b.visibility = vec![
        crate::decode::tests::memory_visibility(163, 90, 96),
        Visibility::Blocks {
            block: (0..100).map(|i| (i / 25) as u32).collect(),
            sees: vec![vec![], vec![0], vec![], vec![2]],
        },
        Visibility::Causal,
    ];
    let (want, want_g) = reference_loss_and_grads(&m, &b, &device);
    let net = NativeNet::from_model(&m).unwrap();
    let mut g = vec![f32::NAN; net.n_params()];
    let got = net.loss_and_grads(&b, 0, &mut g);
    assert!((got.total - want.total).abs() < 1e-5, "{got:?} vs {want:?}");
    for slot in net.slots() {
        let r = slot.offset..slot.offset + slot.len;
        assert_close(&slot.name, &g[r.clone()], &want_g[r], 5e-4);
    }
    // The pattern is applied: the causal loss of the same batch differs.
    b.visibility = vec![Visibility::Causal; 3];
    let causal = net.loss(&b);
    assert!(
        (causal.total - got.total).abs() > 1e-4,
        "{} vs {}",
        causal.total,
        got.total
    );
}

/// Memory-layout chains (block-sparse attention over memory rows, slot embeddings): the
/// native step's loss and every gradient against burn's autodiff, at the default model
/// shape on two shipped-size histories (13 regions of 80 steps, M = 4; 2,140 tokens each).
/// The memory tests' model (seed 4) for blocks of `max_len`, and one step on `b` from both
/// engines: `(net, native loss, native gradients, burn loss, burn gradients)`.
fn chain_step_on_both_engines(
    max_len: usize,
    b: &TokenBatch,
) -> (NativeNet, LossMetrics, Vec<f32>, LossMetrics, Vec<f32>) {
    let cfg = crate::memory_tests::memory_model(max_len, 4, 0).1;
    let (m, device) = model(&cfg, 4);
    let (want, want_g) = reference_loss_and_grads(&m, b, &device);
    let net = NativeNet::from_model(&m).unwrap();
    let mut g = vec![f32::NAN; net.n_params()];
    let got = net.loss_and_grads(b, 0, &mut g);
    (net, got, g, want, want_g)
}

#[test]
fn chains_match_burn_gradients() {
    use crate::memory_fixture::{Histories, chain_batch, layout};
    use ccad_core::context::MemoryUpdate;
    let view = Histories::new(2, 13, 80, 11);
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let (layout, max_len) = layout(80, 4, update);
        let b = chain_batch(&view, &layout);
        let (net, got, g, want, want_g) = chain_step_on_both_engines(max_len, &b);
        assert_eq!(got.n_action, 2 * 13 * 80);
        assert_eq!(got.n_action, want.n_action);
        assert!((got.total - want.total).abs() < 1e-4, "{got:?} vs {want:?}");
        for slot in net.slots() {
            let r = slot.offset..slot.offset + slot.len;
            if slot.name == "query_state.weight" {
                continue; // no query in a dense layout
            }
            assert!(
                want_g[r.clone()].iter().any(|&v| v != 0.0),
                "{update:?} {}: burn's gradient is all zero",
                slot.name
            );
            assert_close(
                &format!("{update:?} {}", slot.name),
                &g[r.clone()],
                &want_g[r],
                5e-4,
            );
        }
        // Every memory slot's embedding gets a gradient (so a step changes it), and under
        // concat every region index's row (regions 0..=11 write memory a later block reads;
        // region 12 and later share row 11).
        let table = net
            .slots()
            .iter()
            .find(|s| s.name == "slot.weight")
            .unwrap();
        let d = net.config().d_model;
        let row = |i: usize| &g[table.offset + i * d..table.offset + (i + 1) * d];
        use ccad_core::tokens::slot_table::{REGION_ROWS, slot_row};
        for slot in 0..4 {
            assert!(
                row(slot_row(slot)).iter().any(|&v| v != 0.0),
                "{update:?}: slot {slot}"
            );
        }
        for region in 0..REGION_ROWS {
            let moved = row(region).iter().any(|&v| v != 0.0);
            assert_eq!(
                moved,
                update == MemoryUpdate::Concat,
                "{update:?}: region {region}"
            );
        }
    }
}

/// `train_regions = 5`: history 0 of 13 regions becomes 3 chunks, blocks [0,5), [0,10) with
/// 0-4 frozen, [0,13) with 0-9 frozen. The native step matches burn's gradients (burn
/// detaches the frozen memory); the chunks' loss is the whole history's (the same logits at
/// the same labels); and under concat the region-index rows of regions 4 and 9 get no
/// gradient: their memory is read only by blocks of the next chunk, where they are frozen
/// (without freezing, both do).
#[test]
fn frozen_blocks_match_burn_and_pass_no_gradient_back() {
    use crate::memory_fixture::{Histories, chain_batch, chunk_batch, layout};
    use ccad_core::context::{ContextLayout, MemoryUpdate};
    use ccad_core::tokens::slot_table::REGION_ROWS;
    let view = Histories::new(1, 13, 80, 11);
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let (whole_layout, max_len) = layout(80, 4, update);
        let mut chunked = whole_layout.clone().with_train_regions(5);
        chunked.prepare(&view);
        assert_eq!(chunked.n_samples(&view), 3);
        let b = chunk_batch(&view, &chunked, 3);
        let (net, got, g, want, want_g) = chain_step_on_both_engines(max_len, &b);
        assert_eq!((got.n_action, want.n_action), (13 * 80, 13 * 80));
        assert!((got.total - want.total).abs() < 1e-4, "{got:?} vs {want:?}");
        for slot in net.slots() {
            let r = slot.offset..slot.offset + slot.len;
            assert_close(
                &format!("{update:?} frozen {}", slot.name),
                &g[r.clone()],
                &want_g[r],
                5e-4,
            );
        }
        let whole = net.loss(&chain_batch(&view, &whole_layout));
        assert!(
            (whole.total - got.total).abs() < 1e-5,
            "{update:?}: chunks {} vs whole {}",
            got.total,
            whole.total
        );
        if update == MemoryUpdate::Concat {
            let table = net
                .slots()
                .iter()
                .find(|s| s.name == "slot.weight")
                .unwrap();
            let d = net.config().d_model;
            let moved = |g: &[f32]| -> Vec<usize> {
                (0..REGION_ROWS)
                    .filter(|&r| {
                        g[table.offset + r * d..table.offset + (r + 1) * d]
                            .iter()
                            .any(|&v| v != 0.0)
                    })
                    .collect()
            };
            assert_eq!(moved(&g), [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]);
            assert_eq!(moved(&want_g), [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]);
            let mut unfrozen = b.clone();
            for v in &mut unfrozen.visibility {
                if let Visibility::Chain(c) = v {
                    c.freeze_before(0);
                }
            }
            let mut g2 = vec![0.0; net.n_params()];
            net.loss_and_grads(&unfrozen, 0, &mut g2);
            assert_eq!(moved(&g2), (0..REGION_ROWS).collect::<Vec<_>>());
        }
    }
}

/// Reductions are order-fixed: a training step on 1 thread and on 2 threads gives
/// bit-identical loss and gradients, for a causal batch (16 × 163 tokens), memory chains
/// (concat and merge, 2 × 2,140 tokens) and the selective baseline's kept prefixes.
#[test]
fn one_and_two_threads_give_bit_identical_steps() {
    use crate::memory_fixture::{Histories, chain_batch, keep_batch, layout};
    use ccad_core::context::{KeepDense, MemoryUpdate};
    let step = |net: &NativeNet, b: &TokenBatch, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut g = vec![0.0f32; net.n_params()];
        let m = pool.install(|| net.loss_and_grads(b, 5, &mut g));
        (
            m.total.to_bits(),
            g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        )
    };
    let view = Histories::new(2, 13, 80, 21);
    let mut cases: Vec<(String, AdModelConfig, TokenBatch)> = Vec::new();
    let causal_cfg = AdModelConfig {
        max_len: 163,
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        n_layers: 2,
        ..config(0.1)
    };
    cases.push(("causal".into(), causal_cfg, batch(3, &[163; 16], 163)));
    for update in [MemoryUpdate::Concat, MemoryUpdate::Merge] {
        let (l, max_len) = layout(80, 4, update);
        let cfg = crate::memory_tests::memory_model(max_len, 4, 0).1;
        cases.push((format!("{update:?}"), cfg, chain_batch(&view, &l)));
    }
    let keep = KeepDense::new(80, 16, 2, 5);
    let cfg = crate::memory_tests::memory_model(163, 16, 0).1;
    cases.push(("keep".into(), cfg, keep_batch(&view, &keep)));
    for (name, cfg, b) in cases {
        assert!(
            b.lengths.iter().sum::<usize>() >= 1_000,
            "{name}: realistic size"
        );
        let (m, _) = model(&cfg, 1);
        let net = NativeNet::from_model(&m).unwrap();
        assert!(
            step(&net, &b, 1) == step(&net, &b, 2),
            "{name}: 1 and 2 threads differ"
        );
    }
}
