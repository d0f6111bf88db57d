//! Reusable step buffers.

/// Split `buf` into consecutive mutable pieces of the given lengths.
pub fn split_lengths<'a>(mut buf: &'a mut [f32], lens: &[usize]) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (head, tail) = buf.split_at_mut(n);
        out.push(head);
        buf = tail;
    }
    out
}

/// Step buffers kept between steps. A step needs a few hundred MB of activations; fresh
/// allocations of that size come from the kernel as zeroed pages on every step (page faults
/// cost about a third of a step), reused ones do not.
#[derive(Default)]
pub struct Pool(std::sync::Mutex<Vec<Vec<f32>>>);

impl Pool {
    /// A buffer of `len` elements with unspecified contents: callers overwrite it.
    pub fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.0.lock().expect("pool lock");
        let fit = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match fit {
            Some(i) => free.swap_remove(i),
            None => free.pop().unwrap_or_default(),
        };
        drop(free);
        // Shrinking keeps old values; only growth writes (zeros).
        v.truncate(len);
        v.resize(len, 0.0);
        v
    }

    /// A buffer of `len` zeros.
    pub fn zeros(&self, len: usize) -> Vec<f32> {
        let mut v = self.take(len);
        v.fill(0.0);
        v
    }

    pub fn give(&self, v: Vec<f32>) {
        self.0.lock().expect("pool lock").push(v);
    }
}

impl Clone for Pool {
    /// A clone starts with no buffers of its own.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}
