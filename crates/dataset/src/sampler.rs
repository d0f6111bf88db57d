//! Which samples go into which batch, and a background thread that assembles them.
//!
//! Epoch-free shuffling: the sample stream is an endless concatenation of passes, each a fresh
//! seeded permutation of all samples, so every sample is a query exactly once per pass. Batch
//! `i` is stream positions `[i·B, (i+1)·B)`: batches ignore pass boundaries (no short or
//! dropped batches) and batch `i` depends only on (seed, i), so training resumes exactly with
//! [`Sampler::seek`].
//!
//! Length bucketing (optional) rearranges samples only inside a pass, in windows of
//! [`BUCKET_WINDOW`] batches: a window's samples are sorted by length and dealt out to its
//! batch slots in a shuffled slot order. Each batch then holds samples of similar length
//! (less padding), the pass is still a permutation, and batch order stays random.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ccad_core::seed;
use ccad_core::tokens::TokenBatch;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::Dataset;

/// Batches per bucketing window. Larger cuts more padding but correlates neighbouring
/// batches' lengths over a longer span.
pub const BUCKET_WINDOW: usize = 32;

/// Random streams of one seed: pass permutations and bucketing slot orders never share one.
const SLOT_STREAM: u64 = 1 << 40;

/// Endless seeded batches of sample numbers, and their assembly into [`TokenBatch`]es.
#[derive(Debug, Clone)]
pub struct Sampler {
    ds: Arc<Dataset>,
    batch_size: usize,
    seed: u64,
    bucket: bool,
    next: u64,
    /// The pass whose order is cached.
    pass: Option<u64>,
    order: Vec<u32>,
}

impl Sampler {
    /// Panics if the dataset has no samples or `batch_size` is 0 (loading refuses the first).
    pub fn new(ds: Arc<Dataset>, batch_size: usize, seed: u64, bucket_by_length: bool) -> Self {
        assert!(batch_size > 0, "batch_size must be > 0");
        assert!(ds.n_samples() > 0, "dataset has no samples");
        assert!(
            ds.n_samples() <= u32::MAX as usize,
            "more than 2^32 samples"
        );
        Self {
            ds,
            batch_size,
            seed,
            bucket: bucket_by_length,
            next: 0,
            pass: None,
            order: Vec::new(),
        }
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.ds
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of the batch the next call returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Continue from batch `i` (e.g. the training step a checkpoint was taken at).
    pub fn seek(&mut self, i: u64) {
        self.next = i;
    }

    /// Sample numbers of the next batch.
    pub fn next_samples(&mut self) -> Vec<usize> {
        let n = self.ds.n_samples() as u64;
        let b = self.batch_size as u64;
        let mut out = Vec::with_capacity(self.batch_size);
        for q in self.next * b..(self.next + 1) * b {
            let pass = q / n;
            if self.pass != Some(pass) {
                self.order = pass_order(&self.ds, self.batch_size, self.seed, pass, self.bucket);
                self.pass = Some(pass);
            }
            out.push(self.order[(q % n) as usize] as usize);
        }
        self.next += 1;
        out
    }

    /// The next batch, assembled.
    pub fn next_batch(&mut self) -> TokenBatch {
        let samples = self.next_samples();
        self.ds.batch(&samples)
    }
}

impl Iterator for Sampler {
    type Item = TokenBatch;
    fn next(&mut self) -> Option<TokenBatch> {
        Some(self.next_batch())
    }
}

/// The order of pass `pass`: a seeded permutation of all samples, bucketed if asked.
pub fn pass_order(ds: &Dataset, batch_size: usize, seed: u64, pass: u64, bucket: bool) -> Vec<u32> {
    let n = ds.n_samples();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut seed::rng(seed, pass));
    if bucket {
        bucketize(ds, &mut order, batch_size, seed, pass);
    }
    order
}

/// Sort each window of [`BUCKET_WINDOW`] batch slots by length and deal the sorted runs to
/// the slots in a random order. Slots follow the global batch grid (the pass may start in
/// the middle of a batch), so every full batch inside the pass gets one sorted run.
fn bucketize(ds: &Dataset, order: &mut [u32], batch_size: usize, seed: u64, pass: u64) {
    let n = order.len();
    let b = batch_size;
    // Pass start's offset within its batch; the first slot runs to the next batch boundary.
    let offset = ((pass as u128 * n as u128) % b as u128) as usize;
    let mut cuts = vec![0];
    let mut c = (b - offset) % b;
    if c == 0 {
        c = b;
    }
    while c < n {
        cuts.push(c);
        c += b;
    }
    cuts.push(n);
    let slots: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    let mut rng = seed::rng(seed, SLOT_STREAM + pass);
    for window in slots.chunks(BUCKET_WINDOW) {
        let (lo, hi) = (window[0].0, window[window.len() - 1].1);
        let mut keyed: Vec<(u32, u32)> = order[lo..hi]
            .par_iter()
            .map(|&s| (ds.sample_len(s as usize) as u32, s))
            .collect();
        // Stable: equal lengths keep their shuffled order.
        keyed.sort_by_key(|&(len, _)| len);
        let mut slot_order: Vec<usize> = (0..window.len()).collect();
        slot_order.shuffle(&mut rng);
        let mut next = keyed.iter().map(|&(_, s)| s);
        for &k in &slot_order {
            let (a, z) = window[k];
            for dst in &mut order[a..z] {
                *dst = next.next().expect("slots cover the window");
            }
        }
    }
}

/// `n_batches` batches that are the same on every call for the same arguments (held-out loss).
pub fn fixed_batches(
    ds: &Arc<Dataset>,
    n_batches: usize,
    batch_size: usize,
    seed: u64,
) -> Vec<TokenBatch> {
    Sampler::new(ds.clone(), batch_size, seed, false)
        .take(n_batches)
        .collect()
}

/// Every sample once, in order, in batches of `batch_size` (the last may be short).
pub fn sequential_batches(
    ds: &Dataset,
    batch_size: usize,
) -> impl Iterator<Item = TokenBatch> + '_ {
    assert!(batch_size > 0, "batch_size must be > 0");
    let n = ds.n_samples();
    (0..n).step_by(batch_size).map(move |lo| {
        let ids: Vec<usize> = (lo..(lo + batch_size).min(n)).collect();
        ds.batch(&ids)
    })
}

/// A [`Sampler`] running on a background thread, `depth` batches ahead of the consumer.
/// Dropping it stops the thread.
pub struct Prefetcher {
    rx: Option<Receiver<TokenBatch>>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn spawn(mut sampler: Sampler, depth: usize) -> Self {
        let (tx, rx): (SyncSender<TokenBatch>, _) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("dataset-prefetch".into())
            .spawn(move || {
                // Ends when the receiver is gone.
                while tx.send(sampler.next_batch()).is_ok() {}
            })
            .expect("spawn prefetch thread");
        Self {
            rx: Some(rx),
            handle: Some(handle),
        }
    }

    /// The next batch; blocks only if the background thread has fallen behind.
    pub fn next_batch(&mut self) -> TokenBatch {
        match self.rx.as_ref().expect("receiver lives until drop").recv() {
            Ok(b) => b,
            Err(_) => {
                // The sender only disappears if the thread panicked: surface its panic.
                let h = self.handle.take().expect("thread handle");
                match h.join() {
                    Err(p) => std::panic::resume_unwind(p),
                    Ok(()) => unreachable!("prefetch thread ended while its receiver lived"),
                }
            }
        }
    }
}

impl Iterator for Prefetcher {
    type Item = TokenBatch;
    fn next(&mut self) -> Option<TokenBatch> {
        Some(self.next_batch())
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel makes the thread's next send fail; then it exits.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
