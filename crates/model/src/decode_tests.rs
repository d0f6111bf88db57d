//! The three [`Decoder`]s against each other at the default model shape (d 64, 4 layers,
//! 4 heads, ff 256) over 321 tokens: rebuilds, appends after a dropped query, a shifted row.

use burn::module::Module;
use ccad_core::backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::native::NativeDecoder;
use crate::{AdModelConfig, Token};

/// Largest native-vs-burn logit difference allowed. Measured: 7.2e-7 at this shape (the
/// native code's f32 `erf` and `exp` and its own summation orders against burn's kernels).
const NATIVE_TOL: f32 = 1e-5;
/// burn's own cache against burn's full pass (same kernels, other shapes of the products).
const BURN_TOL: f32 = 1e-5;

fn token(rng: &mut ChaCha8Rng) -> Token {
    match rng.random_range(0..10) {
        0 => Token::Open,
        1 => Token::Close,
        2 => Token::Query(rng.random_range(0..81)),
        _ => {
            let s = [rng.random_range(0..9), rng.random_range(0..9)];
            let s2 = [rng.random_range(0..9), rng.random_range(0..9)];
            let (a, r) = (rng.random_range(0..5), rng.random_range(0..2) as f32);
            Token::transition(&s, a, r, &s2, 5)
        }
    }
}

fn logits(d: &mut dyn Decoder, rows: &[RowTokens]) -> (Vec<f32>, Vec<f32>, usize) {
    let (mut a, mut t) = (vec![0.0; rows.len() * 5], vec![0.0; rows.len() * 3]);
    let rebuilt = d.decode(rows, &mut a, &mut t);
    (a, t, rebuilt)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn burn_cache_native_and_full_rerun_agree_at_the_default_shape() {
    let config = AdModelConfig::new(&ccad_core::config::ModelConfig::default(), 10, 81, 5, 163);
    assert_eq!(
        (config.d_model, config.n_layers, config.n_heads, config.d_ff),
        (64, 4, 4, 256)
    );
    let device = backend::device();
    backend::seed_device(&device, 5);
    let model = config.init(&device).valid();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut lists: Vec<Vec<Token>> = [162, 100, 50, 8]
        .iter()
        .map(|&n| (0..n).map(|_| token(&mut rng)).collect())
        .collect();
    assert!(lists.iter().map(Vec::len).sum::<usize>() >= 300);
    let query = Token::Query(17);

    let mut burn = BurnCacheDecoder::new(&model, 4, &device);
    let mut native = NativeDecoder::new(&model, 4).unwrap();
    let mut full = FullRerun::new(&model, &device);
    let mut worst = 0.0f32;
    let mut unchanged = [0usize; 4];
    for call in 0..3 {
        let rows: Vec<RowTokens> = (0..4)
            .map(|i| RowTokens {
                context: &lists[i],
                // Row 3 reads its own last token (the dense layout's way).
                last: (i != 3).then_some(&query),
                unchanged: unchanged[i],
            })
            .collect();
        let (fa, ft, f_rebuilt) = logits(&mut full, &rows);
        let (ba, bt, b_rebuilt) = logits(&mut burn, &rows);
        let (na, nt, n_rebuilt) = logits(&mut native, &rows);
        let expect_rebuilt = unchanged.iter().filter(|&&u| u == 0).count();
        assert_eq!(
            (f_rebuilt, b_rebuilt, n_rebuilt),
            (0, expect_rebuilt, expect_rebuilt)
        );
        let burn_diff = max_diff(&ba, &fa).max(max_diff(&bt, &ft));
        assert!(
            burn_diff < BURN_TOL,
            "call {call}: burn cache vs full {burn_diff}"
        );
        let native_diff = max_diff(&na, &fa).max(max_diff(&nt, &ft));
        assert!(
            native_diff < NATIVE_TOL,
            "call {call}: native vs full {native_diff}"
        );
        worst = worst.max(native_diff);

        // Next call: row 0 is full and shifts (rebuilt); the others keep their context and
        // replace the query by two (row 3: one) new tokens.
        lists[0].remove(0);
        lists[0].push(token(&mut rng));
        unchanged[0] = 0;
        for i in 1..4 {
            unchanged[i] = lists[i].len();
            lists[i].push(token(&mut rng));
            if i != 3 {
                lists[i].push(token(&mut rng));
            }
        }
        // Row 3 has no query: its old last token stays unchanged.
    }
    eprintln!("native vs burn full pass: largest logit difference {worst:e}");
}
