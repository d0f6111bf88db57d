//! Speed of the default-config model on the default device: parameter count, one training
//! step (forward + backward + AdamW) at several batch sizes, and cached inference per
//! appended token. `cargo run --release -p model --bin model_bench`.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use clap::Parser;
use model::{AdModelConfig, KvCache, Token, batch_from_tokens};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
#[command(about = "Time the AD transformer: training step and cached inference")]
struct Args {
    /// Batch sizes of the training-step timing.
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    batch: Vec<usize>,
    /// Tokens per sequence (2I + 3 = 163 for I = 80).
    #[arg(long, default_value_t = 163)]
    seq_len: usize,
    /// Timed training steps per batch size (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Rows of the cached-inference timing.
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Override the config's dropout (0 shows what the random masks cost).
    #[arg(long)]
    dropout: Option<f64>,
    /// Override the attention-weight dropout (default: the same as dropout).
    #[arg(long)]
    attention_dropout: Option<f64>,
    /// Time only the native CPU step (`model::native`), not burn's.
    #[arg(long)]
    native_only: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    ccad_core::cli::run_main(|| {
        run(args);
        Ok::<(), ccad_core::Error>(())
    })
}

fn run(args: Args) {
    let mut model_config = ccad_core::config::ModelConfig::default();
    if let Some(p) = args.dropout {
        model_config.dropout = p;
    }
    let mut config = AdModelConfig::new(
        &model_config,
        ccad_core::tokens::transition_feature_dim(2, 5),
        81,
        5,
        args.seq_len,
    );
    if let Some(p) = args.attention_dropout {
        config.attention_dropout = p;
    }
    let device = ccad_core::backend::autodiff_device();
    ccad_core::backend::seed_device(&device, 0);
    let mut model = config.init(&device);
    println!(
        "backend {}  d_model {} layers {} heads {} d_ff {} dropout {} attention_dropout {}  parameters {}",
        ccad_core::backend::backend_name(),
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.d_ff,
        config.dropout,
        config.attention_dropout,
        model.num_params()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    for &b in &args.batch {
        let contexts: Vec<Vec<Token>> = (0..b).map(|_| context(&mut rng, args.seq_len)).collect();
        let mut batch = batch_from_tokens(&contexts, config.feat_dim);
        for (i, &len) in batch.lengths.iter().enumerate() {
            batch.target_action[i * batch.seq_len + len - 1] = rng.random_range(0..5);
            batch.target_type[i * batch.seq_len + len - 1] = 0;
        }
        let mut native = model::native::NativeNet::from_model(&model).expect("native layout");
        let mut grads = vec![0.0f32; native.n_params()];
        let mut times = Vec::new();
        for step in 0..=args.steps {
            let t = Instant::now();
            let m = native.loss_and_grads(&batch, step as u64, &mut grads);
            // A plain gradient step stands in for AdamW (a few elementwise passes over 0.2 M
            // parameters, well under a millisecond).
            native
                .params_mut()
                .iter_mut()
                .zip(&grads)
                .for_each(|(p, g)| *p -= 1e-4 * g);
            if step > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            assert!(m.total.is_finite());
        }
        report("native", b, args.seq_len, &times);
        if args.native_only {
            continue;
        }
        let mut times = Vec::new();
        for step in 0..=args.steps {
            let t = Instant::now();
            let loss = model.loss(&batch, &device);
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optim.step(3e-4, model, grads);
            let total = loss.metrics().total; // forces the step to finish
            if step > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            assert!(total.is_finite());
        }
        report("burn", b, args.seq_len, &times);
    }
    if args.native_only {
        return;
    }

    // Cached inference: prefill `<c>`, then append tokens one at a time up to max_len.
    let model = model.valid();
    let device = ccad_core::backend::device();
    let mut cache = KvCache::new(&model, args.rows, &device);
    let start: Vec<Vec<Token>> = (0..args.rows).map(|_| vec![Token::Open]).collect();
    cache.prefill(&model, &start);
    let t = Instant::now();
    let mut appended = 0;
    while cache.len(0) < cache.capacity() {
        let tokens: Vec<Token> = (0..args.rows).map(|_| transition(&mut rng)).collect();
        let _ = cache.append(&model, &tokens).to_host();
        appended += 1;
    }
    let per_step = t.elapsed().as_secs_f64() / appended as f64;
    println!(
        "cached inference  {} rows, context 1..{}: {:.3} ms per appended token (all rows)",
        args.rows,
        cache.capacity(),
        per_step * 1e3
    );
    // For comparison: one full pass over a full-length context per step.
    let full: Vec<Vec<Token>> = (0..args.rows)
        .map(|_| context(&mut rng, args.seq_len))
        .collect();
    let batch = batch_from_tokens(&full, config.feat_dim);
    let reps = 5;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = model.forward(&batch, &device).action.into_data();
    }
    println!(
        "full forward      {} rows x {} tokens: {:.3} ms per pass",
        args.rows,
        args.seq_len,
        t.elapsed().as_secs_f64() / reps as f64 * 1e3
    );
}

fn report(engine: &str, b: usize, seq_len: usize, times: &[f64]) {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "train step  {engine:6} batch {b:4} x {seq_len} tokens: mean {mean:.3} s  min {min:.3} s  ({:.0} samples/s)",
        b as f64 / mean
    );
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

/// A full compressed context: `<c> P </c> <c> C q` with `len` tokens in all.
fn context(rng: &mut ChaCha8Rng, len: usize) -> Vec<Token> {
    let n = len - 4; // transitions in P and C together
    let mut t = vec![Token::Open];
    t.extend((0..n.div_ceil(2)).map(|_| transition(rng)));
    t.extend([Token::Close, Token::Open]);
    t.extend((0..n / 2).map(|_| transition(rng)));
    t.push(Token::Query(rng.random_range(0..81)));
    t
}
