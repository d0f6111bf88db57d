//! The three [`Decoder`]s against each other at the default model shape (d 64, 4 layers,
//! 4 heads, ff 256) over 321 tokens: rebuilds, appends after a dropped query, a shifted row.

use burn::module::Module;
use ccad_core::backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::native::NativeDecoder;
use crate::{AdModelConfig, Token};
use ccad_core::context::Visibility;

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
                visibility: &Visibility::Causal,
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

/// A compressed memory's pattern: tokens `0..region` a region (block 0), `region..memory` its
/// memory (block 1, sees the region), the rest (block 2, and anything appended later) sees
/// the memory but not the region.
pub(crate) fn memory_visibility(len: usize, region: usize, memory: usize) -> Visibility {
    let block = (0..len)
        .map(|i| u32::from(i >= region) + u32::from(i >= memory))
        .collect();
    Visibility::Blocks {
        block,
        sees: vec![vec![], vec![0], vec![1]],
    }
}

/// Every block sees only itself.
fn isolated_blocks(len: usize, block_len: usize) -> Visibility {
    let block: Vec<u32> = (0..len).map(|i| (i / block_len) as u32).collect();
    let n = block.last().map_or(1, |b| b + 1) as usize;
    Visibility::Blocks {
        block,
        sees: vec![vec![]; n],
    }
}

#[test]
fn decoders_agree_under_block_visibility_and_hidden_tokens_have_no_influence() {
    let config = AdModelConfig::new(&ccad_core::config::ModelConfig::default(), 10, 81, 5, 163);
    let device = backend::device();
    backend::seed_device(&device, 9);
    let model = config.init(&device).valid();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut lists: Vec<Vec<Token>> = [150, 120, 40]
        .iter()
        .map(|&n| (0..n).map(|_| token(&mut rng)).collect())
        .collect();
    assert!(lists.iter().map(Vec::len).sum::<usize>() >= 300);
    let vis = [
        memory_visibility(150, 100, 104),
        isolated_blocks(120, 30),
        Visibility::Causal,
    ];
    let query = Token::Query(17);

    let mut burn = BurnCacheDecoder::new(&model, 3, &device);
    let mut native = NativeDecoder::new(&model, 3).unwrap();
    let mut full = FullRerun::new(&model, &device);
    let mut unchanged = [0usize; 3];
    for call in 0..3 {
        let rows: Vec<RowTokens> = (0..3)
            .map(|i| RowTokens {
                context: &lists[i],
                last: Some(&query),
                unchanged: unchanged[i],
                visibility: &vis[i],
            })
            .collect();
        let (fa, ft, _) = logits(&mut full, &rows);
        let (ba, bt, _) = logits(&mut burn, &rows);
        let (na, nt, _) = logits(&mut native, &rows);
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

        // The patterns matter: read causally, the masked rows' logits differ.
        let causal: Vec<RowTokens> = rows
            .iter()
            .map(|r| RowTokens {
                visibility: &Visibility::Causal,
                ..*r
            })
            .collect();
        let (ca, _, _) = logits(&mut full, &causal);
        assert!(
            max_diff(&ca[..10], &fa[..10]) > 1e-3,
            "call {call}: masks changed nothing"
        );
        assert!(
            max_diff(&ca[10..], &fa[10..]) < 1e-6,
            "causal row 2 changed"
        );

        // Tokens the last token cannot reach have no influence: row 1's blocks before its
        // last one. Row 0's region is hidden from the query but reaches it through the
        // memory, which sees it: replacing it must change the logits.
        let mut swapped_lists = lists.clone();
        for t in &mut swapped_lists[1][..90] {
            *t = token(&mut rng);
        }
        for t in &mut swapped_lists[0][1..100] {
            *t = token(&mut rng);
        }
        let swapped: Vec<RowTokens> = (0..3)
            .map(|i| RowTokens {
                context: &swapped_lists[i],
                ..rows[i]
            })
            .collect();
        let (ha, ht, _) = logits(&mut full, &swapped);
        let row = |v: &[f32], i: usize, w: usize| v[i * w..(i + 1) * w].to_vec();
        assert_eq!(
            row(&ha, 1, 5),
            row(&fa, 1, 5),
            "call {call}: a hidden token leaked"
        );
        assert_eq!(
            row(&ht, 1, 3),
            row(&ft, 1, 3),
            "call {call}: a hidden token leaked"
        );
        assert!(
            max_diff(&row(&ha, 0, 5), &row(&fa, 0, 5)) > 1e-4,
            "call {call}: the memory does not carry its region"
        );

        // Next call: rows 1 and 2 replace the query by two new tokens (appended to their
        // last block); row 0 rewrites its memory from position 100 on (as a compressor
        // would after re-encoding), keeping the region's cache entries.
        for i in 1..3 {
            unchanged[i] = lists[i].len();
            lists[i].push(token(&mut rng));
            lists[i].push(token(&mut rng));
        }
        unchanged[0] = 100;
        for t in &mut lists[0][100..] {
            *t = token(&mut rng);
        }
    }
}
