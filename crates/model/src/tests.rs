//! Model-level tests: shapes, causality, padding, the loss, the cache, checkpoints.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ccad_core::backend;
use ccad_core::tokens::{IGNORE, TokenBatch};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::*;

/// Tiny but complete: 2 layers, 2 heads; Dark Room dims (obs 2, 5 actions → 10 features).
fn config() -> AdModelConfig {
    AdModelConfig {
        feat_dim: 10,
        n_states: 81,
        n_actions: 5,
        max_len: 24,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        d_ff: 32,
        dropout: 0.1,
        attention_dropout: 0.1,
        type_loss_weight: 0.1,
        token_types: 3,
        slots: 0,
    }
}

fn model_with(config: &AdModelConfig, seed: u64) -> (AdModel, Device) {
    let device = backend::device();
    backend::seed_device(&device, seed);
    (config.init(&device).valid(), device)
}

fn model(seed: u64) -> (AdModel, Device) {
    model_with(&config(), seed)
}

fn transition(rng: &mut ChaCha8Rng) -> Token {
    let s = [rng.random_range(0..9), rng.random_range(0..9)];
    let s2 = [rng.random_range(0..9), rng.random_range(0..9)];
    Token::transition(
        &s,
        rng.random_range(0..5),
        rng.random_range(0..2) as f32,
        &s2,
        5,
    )
}

fn query(rng: &mut ChaCha8Rng) -> Token {
    Token::Query(rng.random_range(0..81))
}

/// `<c> P </c> <c> C q` (or `<c> C q` without a previous region), DESIGN §5.
fn compressed(rng: &mut ChaCha8Rng, prev: usize, cur: usize) -> Vec<Token> {
    let mut t = Vec::new();
    if prev > 0 {
        t.push(Token::Open);
        t.extend((0..prev).map(|_| transition(rng)));
        t.push(Token::Close);
    }
    t.push(Token::Open);
    t.extend((0..cur).map(|_| transition(rng)));
    t.push(query(rng));
    t
}

/// `n` transitions then the query.
fn window(rng: &mut ChaCha8Rng, n: usize) -> Vec<Token> {
    let mut t: Vec<Token> = (0..n).map(|_| transition(rng)).collect();
    t.push(query(rng));
    t
}

/// Label each sequence at its last (query) position, like the query objective.
fn labelled(contexts: &[Vec<Token>], rng: &mut ChaCha8Rng) -> TokenBatch {
    let mut batch = batch_from_tokens(contexts, 10);
    for b in 0..batch.batch {
        let p = b * batch.seq_len + batch.lengths[b] - 1;
        batch.target_action[p] = rng.random_range(0..5);
        batch.target_type[p] = if rng.random_bool(0.5) { 0 } else { 2 };
    }
    batch
}

fn host<const D: usize>(t: &Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.clone().into_data().try_to_vec::<f32>().unwrap(),
    )
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Logits of row `b`, position `p` from a `[B, L, C]` host copy.
fn at(dims: &[usize], v: &[f32], b: usize, p: usize) -> Vec<f32> {
    let (l, c) = (dims[1], dims[2]);
    v[(b * l + p) * c..(b * l + p + 1) * c].to_vec()
}

#[test]
fn shapes_for_compressed_and_window_batches() {
    let (model, device) = model(1);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Compressed: first region (no P) and a later one; longest 2·6 + 3 = 15 tokens.
    let batch = labelled(
        &[compressed(&mut rng, 0, 3), compressed(&mut rng, 6, 5)],
        &mut rng,
    );
    assert_eq!(batch.seq_len, 15);
    let out = model.forward(&batch, &device);
    assert_eq!(out.action.dims(), [2, 15, 5]);
    assert_eq!(out.token_type.dims(), [2, 15, 3]);
    // Window: 3 sequences, up to 23 transitions + query = max_len.
    let batch = labelled(
        &[
            window(&mut rng, 23),
            window(&mut rng, 1),
            window(&mut rng, 0),
        ],
        &mut rng,
    );
    let out = model.forward(&batch, &device);
    assert_eq!(out.action.dims(), [3, 24, 5]);
    assert_eq!(out.token_type.dims(), [3, 24, 3]);
    let (_, v) = host(&out.action);
    assert!(v.iter().all(|x| x.is_finite()));
    let m = model.loss(&batch, &device).metrics();
    assert_eq!((m.n_action, m.n_token_type), (3, 3));
    assert!(m.total.is_finite() && m.total > 0.0);
}

#[test]
fn later_tokens_do_not_change_earlier_outputs() {
    let (model, device) = model(2);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let a = compressed(&mut rng, 4, 3); // 11 tokens
    let mut b = a.clone();
    b[7] = transition(&mut rng); // a transition of the current region
    b[10] = query(&mut rng);
    let (dims, va) = host(&model.forward(&batch_from_tokens(&[a], 10), &device).action);
    let (_, vb) = host(&model.forward(&batch_from_tokens(&[b], 10), &device).action);
    for p in 0..7 {
        assert_eq!(at(&dims, &va, 0, p), at(&dims, &vb, 0, p), "position {p}");
    }
    for p in 7..11 {
        assert!(
            max_diff(&at(&dims, &va, 0, p), &at(&dims, &vb, 0, p)) > 1e-6,
            "position {p}"
        );
    }
}

#[test]
fn padding_does_not_change_a_sequence() {
    let (model, device) = model(3);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let short = compressed(&mut rng, 0, 4); // 6 tokens
    let long = compressed(&mut rng, 6, 5); // 15 tokens
    let alone = model.forward(
        &batch_from_tokens(std::slice::from_ref(&short), 10),
        &device,
    );
    let mut padded = batch_from_tokens(&[long, short.clone()], 10);
    // Junk in the padding must not matter either.
    for x in &mut padded.features[padded.seq_len * 10 + short.len() * 10..] {
        *x = rng.random_range(-5.0..5.0);
    }
    let together = model.forward(&padded, &device);
    for (a, b) in [
        (&alone.action, &together.action),
        (&alone.token_type, &together.token_type),
    ] {
        let ((da, va), (db, vb)) = (host(a), host(b));
        for p in 0..short.len() {
            let d = max_diff(&at(&da, &va, 0, p), &at(&db, &vb, 1, p));
            assert!(d < 1e-5, "position {p}: {d}");
        }
    }
}

#[test]
fn masked_cross_entropy_by_hand() {
    let device = backend::device();
    // Row 0: logits [1, 0], label 0: nll = ln(1 + e^-1) = 0.313262, argmax 0 (hit).
    // Row 1: logits [0, ln 3], label 0: nll = -ln(1/4) = 1.386294, argmax 1 (miss).
    // Row 2: IGNORE, with logits that would dominate if counted.
    // Mean over the 2 labelled rows: 0.849778; accuracy 0.5.
    let logits = Tensor::<2>::from_data([[1.0, 0.0], [0.0, 3f32.ln()], [-50.0, 50.0]], &device);
    let labels = Tensor::<1, burn::tensor::Int>::from_data([0, 0, IGNORE], &device);
    let ce = crate::model::masked_cross_entropy(logits, labels);
    let loss = ce.loss.into_scalar::<f32>();
    assert!((loss - 0.849778).abs() < 1e-5, "{loss}");
    assert_eq!(ce.accuracy.into_scalar::<f32>(), 0.5);
    assert_eq!(ce.count.into_scalar::<f32>(), 2.0);
}

#[test]
fn loss_is_action_plus_weighted_type() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let contexts = [
        compressed(&mut rng, 6, 2),
        compressed(&mut rng, 0, 5),
        window(&mut rng, 9),
    ];
    let batch = labelled(&contexts, &mut rng);
    // Two models that differ only in the loss weight. The weights are copied rather than
    // re-drawn from one seed: tests run in parallel and share the backend's generator.
    let with_weight = |w: f64| {
        model_with(
            &AdModelConfig {
                type_loss_weight: w,
                ..config()
            },
            4,
        )
    };
    let (light, device) = with_weight(0.0);
    let (heavy, _) = with_weight(2.0);
    let heavy = heavy.load_record(light.clone().into_record());
    let m0 = light.loss(&batch, &device).metrics();
    let m2 = heavy.loss(&batch, &device).metrics();
    assert_eq!(m0.action, m2.action);
    assert_eq!(m0.token_type, m2.token_type);
    assert_eq!(m0.total, m0.action);
    assert!((m2.total - (m2.action + 2.0 * m2.token_type)).abs() < 1e-6);
    assert!(m0.token_type > 0.0);
}

#[test]
fn loss_reads_only_labelled_positions() {
    let (model, device) = model(5);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let contexts = [compressed(&mut rng, 6, 6), compressed(&mut rng, 0, 2)];
    let mut batch = labelled(&contexts, &mut rng);
    // A second label in row 0, mid-sequence (as the dense objective would add).
    batch.target_action[4] = 3;
    batch.target_type[4] = IGNORE;
    let m = model.loss(&batch, &device).metrics();
    assert_eq!((m.n_action, m.n_token_type), (3, 2));

    // Expected: mean CE over exactly the labelled positions of the forward logits.
    let out = model.forward(&batch, &device);
    let ce = |logits: &Tensor<3>, labels: &[i32]| {
        let (dims, v) = host(logits);
        let c = dims[2];
        let (mut sum, mut n) = (0.0f64, 0);
        for (i, &y) in labels.iter().enumerate().filter(|(_, y)| **y != IGNORE) {
            let row = &v[i * c..(i + 1) * c];
            let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
            sum += lse - row[y as usize] as f64;
            n += 1;
        }
        (sum / n as f64) as f32
    };
    assert!((m.action - ce(&out.action, &batch.target_action)).abs() < 1e-5);
    assert!((m.token_type - ce(&out.token_type, &batch.target_type)).abs() < 1e-5);

    // Junk features and labels-free padding after row 1's query change nothing.
    let mut junk = batch.clone();
    let start = junk.seq_len * 10 + junk.lengths[1] * 10;
    for x in &mut junk.features[start..] {
        *x = rng.random_range(-9.0..9.0);
    }
    assert_eq!(model.loss(&junk, &device).metrics(), m);
}

#[test]
fn a_few_adamw_steps_fit_a_batch() {
    use burn::optim::{AdamWConfig, GradientsParams};
    let device = backend::autodiff_device();
    backend::seed_device(&device, 6);
    let mut model = AdModelConfig {
        dropout: 0.0,
        ..config()
    }
    .init(&device);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let contexts: Vec<_> = (0..8)
        .map(|i| compressed(&mut rng, 6 * (i % 2), 1 + i))
        .collect();
    let batch = labelled(&contexts, &mut rng);
    let mut optim = AdamWConfig::new().init();
    let first = model.loss(&batch, &device).metrics().total;
    for _ in 0..40 {
        let loss = model.loss(&batch, &device);
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let last = model.loss(&batch, &device).metrics();
    assert!(last.total < 0.3 * first, "{first} -> {}", last.total);
    assert_eq!(last.acc_action, 1.0);
}

/// Full-forward logits at each context's last token: `(action, token_type)` per row.
fn reference(
    model: &AdModel,
    device: &Device,
    contexts: &[Vec<Token>],
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let out = model.forward(&batch_from_tokens(contexts, 10), device);
    let ((da, va), (dt, vt)) = (host(&out.action), host(&out.token_type));
    contexts
        .iter()
        .enumerate()
        .map(|(b, c)| (at(&da, &va, b, c.len() - 1), at(&dt, &vt, b, c.len() - 1)))
        .collect()
}

/// Compare `(output row i, context row r)` pairs of a step's logits with the reference.
fn check(
    step: &StepLogits,
    pairs: impl IntoIterator<Item = (usize, usize)>,
    expected: &[(Vec<f32>, Vec<f32>)],
    what: &str,
) {
    let (a, t) = step.to_host();
    for (i, r) in pairs {
        let da = max_diff(&a[i * 5..(i + 1) * 5], &expected[r].0);
        let dt = max_diff(&t[i * 3..(i + 1) * 3], &expected[r].1);
        assert!(da < 1e-4 && dt < 1e-4, "{what}: row {r}: {da} {dt}");
    }
}

#[test]
fn cached_steps_match_full_forward_across_a_region_drop() {
    let (model, device) = model(7);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Three rows of different lengths, as evaluation holds them.
    let mut ctx = vec![
        compressed(&mut rng, 6, 2),
        vec![Token::Open, query(&mut rng)],
        window(&mut rng, 4),
    ];
    let mut cache = KvCache::new(&model, 3, &device);
    let step = cache.prefill(&model, &ctx);
    check(
        &step,
        [(0, 0), (1, 1), (2, 2)],
        &reference(&model, &device, &ctx),
        "prefill",
    );

    for t in 0..14 {
        // Evaluation's step: drop each query, append the transition that replaces it, then
        // the next query. Row 2 sits out every third step.
        let idle = |r: usize| r == 2 && t % 3 == 0;
        let mut tokens: Vec<Option<Token>> = Vec::new();
        for (r, c) in ctx.iter_mut().enumerate() {
            if idle(r) {
                tokens.push(None);
            } else {
                c.pop();
                cache.truncate(r, c.len());
                let tok = transition(&mut rng);
                c.push(tok.clone());
                tokens.push(Some(tok));
            }
        }
        cache.append_rows(&model, &tokens);
        // Row 1 closes its region at t = 4: `</c> <c>` then its query.
        if t == 4 {
            ctx[1].push(Token::Close);
            let mut tokens = vec![None, Some(Token::Close), None];
            cache.append_rows(&model, &tokens);
            ctx[1].push(Token::Open);
            tokens[1] = Some(Token::Open);
            cache.append_rows(&model, &tokens);
        }
        let queries: Vec<Token> = (0..3).map(|_| query(&mut rng)).collect();
        let active: Vec<usize> = (0..3).filter(|&r| !idle(r)).collect();
        let tokens: Vec<Option<Token>> = (0..3)
            .map(|r| active.contains(&r).then(|| queries[r].clone()))
            .collect();
        for &r in &active {
            ctx[r].push(queries[r].clone());
        }
        let step = cache.append_rows(&model, &tokens);
        let expected = reference(&model, &device, &ctx);
        // append returns every row, in row order
        check(
            &step,
            active.iter().map(|&r| (r, r)),
            &expected,
            &format!("step {t}"),
        );
        assert_eq!(
            cache.lengths(),
            ctx.iter().map(Vec::len).collect::<Vec<_>>()
        );

        // Row 0's current region fills up at t = 3: the previous region is dropped, the
        // context shrinks to `<c> P </c> <c> q` and positions restart at 0.
        if t == 3 {
            let cur: Vec<Token> = ctx[0][10..ctx[0].len() - 1].to_vec(); // after `<c> P6 </c> <c>`
            let mut shorter = vec![Token::Open];
            shorter.extend(cur);
            shorter.extend([Token::Close, Token::Open, query(&mut rng)]);
            ctx[0] = shorter;
            let step = cache.rebuild(&model, &[0], &ctx[0..1]);
            check(
                &step,
                [(0, 0)],
                &reference(&model, &device, &ctx),
                "rebuild",
            );
        }
        // Two rows at once, given out of order: the window slides past 3 transitions in
        // row 2, row 1 keeps `<c>` and its last 3 tokens.
        if t == 8 {
            ctx[2].drain(..3);
            let keep = ctx[1].len() - 3;
            let tail = ctx[1].split_off(keep);
            ctx[1] = [vec![Token::Open], tail].concat();
            let step = cache.rebuild(&model, &[2, 1], &[ctx[2].clone(), ctx[1].clone()]);
            check(
                &step,
                [(0, 2), (1, 1)],
                &reference(&model, &device, &ctx),
                "rebuild 2",
            );
        }
    }
    // Rows really differ in length and row 0 was rebuilt shorter than it had grown.
    assert!(cache.len(0) < 10 + 2 + 14);
    assert_ne!(cache.len(1), cache.len(2));
}

#[test]
fn a_full_row_can_still_sit_out_a_step() {
    let (model, device) = model(8);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let full = window(&mut rng, 23); // 24 tokens = capacity
    let mut ctx = vec![full, window(&mut rng, 2)];
    let mut cache = KvCache::new(&model, 2, &device);
    cache.prefill(&model, &ctx);
    let q = query(&mut rng);
    ctx[1].push(q.clone());
    let step = cache.append_rows(&model, &[None, Some(q)]);
    check(
        &step,
        [(1, 1)],
        &reference(&model, &device, &ctx),
        "beside a full row",
    );
    assert_eq!(cache.lengths(), &[24, 4]);
}

#[test]
fn save_load_gives_identical_outputs() {
    let (model, device) = model(9);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ckpt");
    model.save(&run).unwrap();
    let loaded = AdModel::load(&run, &device).unwrap();
    assert_eq!(loaded.config(), model.config());
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let batch = labelled(&[compressed(&mut rng, 6, 4), window(&mut rng, 7)], &mut rng);
    let (a, b) = (
        model.forward(&batch, &device),
        loaded.forward(&batch, &device),
    );
    assert_eq!(host(&a.action), host(&b.action));
    assert_eq!(host(&a.token_type), host(&b.token_type));
    // Nothing but the two files (no temporaries left).
    let mut names: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [CONFIG_FILE, WEIGHTS_FILE]);
}

#[test]
fn loading_into_another_shape_is_a_one_line_error() {
    let (model, device) = model(10);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let weights = dir.path().join(WEIGHTS_FILE);

    let wider = AdModelConfig {
        d_model: 32,
        ..config()
    }
    .init(&device);
    let err = wider.load_weights(&weights).unwrap_err().to_string();
    assert!(
        // d_model 16 saved, 32 expected: the transition Linear's weight is [feat_dim, d_model].
        err.contains(
            "model.safetensors: transition.weight: shape [10, 16] in the file, the model has [10, 32]"
        ),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    let deeper = AdModelConfig {
        n_layers: 3,
        ..config()
    }
    .init(&device);
    let err = deeper.load_weights(&weights).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("missing"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    let err = AdModel::load(&dir.path().join("nowhere"), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nowhere") && err.contains("model.json"),
        "{err}"
    );

    std::fs::write(&weights, b"not a safetensors file").unwrap();
    let err = AdModel::load(dir.path(), &device).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn parameter_count_of_the_default_model() {
    // Dark Room, I = 80: feat 10, 81 states, 5 actions, max_len 163, d 64, 4 layers, ff 256.
    // Embeddings: transition 10·64+64 = 704, query 81·64 = 5184, <c> </c> 2·64 = 128,
    //   type 3·64 = 192, position 163·64 = 10432.
    // Block: 2 norms 4·64 = 256, qkv 64·192+192 = 12480, out 64·64+64 = 4160,
    //   fc_in 64·256+256 = 16640, fc_out 256·64+64 = 16448 → 49984; × 4 = 199936.
    // Final norm 128, heads 64·5+5 = 325 and 64·3+3 = 195. Total 217224.
    let c = AdModelConfig::new(&ccad_core::config::ModelConfig::default(), 10, 81, 5, 163);
    assert_eq!(c.init(&backend::device()).num_params(), 217_224);
}

#[test]
fn a_flipped_bit_or_a_non_finite_weight_is_refused_on_load() {
    let (model, device) = model(12);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let weights = dir.path().join(WEIGHTS_FILE);
    let good = std::fs::read(&weights).unwrap();
    assert!(AdModel::load(dir.path(), &device).is_ok());

    // One bit of the last tensor value (the data ends the file) flipped.
    let mut bad = good.clone();
    let last = bad.len() - 2;
    bad[last] ^= 0x01;
    std::fs::write(&weights, &bad).unwrap();
    let err = AdModel::load(dir.path(), &device).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors: weights: the weights hash to")
            && err.contains("the file is corrupt"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    // A NaN weight: refused when saving, and when loading a file that holds one (an f32
    // NaN's bytes written over the last value, which also breaks the digest).
    let mut nan = good.clone();
    let n = nan.len();
    nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&weights, &nan).unwrap();
    let err = AdModel::load(dir.path(), &device).unwrap_err().to_string();
    assert!(err.contains("holds a non-finite value"), "{err}");
    let mut net = crate::native::NativeNet::from_model(&model).unwrap();
    net.params_mut()[0] = f32::NAN;
    let other = tempfile::tempdir().unwrap();
    let err = net
        .to_model(&device)
        .save(other.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weights: not saved") && err.contains("non-finite"),
        "{err}"
    );

    // A file written before the digest existed (no metadata) loads unchecked.
    let mut store = burn::store::SafetensorsStore::from_bytes(None);
    burn::store::ModuleSnapshot::save_into(&model, &mut store).unwrap();
    std::fs::write(&weights, store.get_bytes().unwrap()).unwrap();
    let loaded = AdModel::load(dir.path(), &device).unwrap();
    assert_eq!(loaded.params_digest(), model.params_digest());
}
