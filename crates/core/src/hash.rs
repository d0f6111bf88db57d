//! Content hashes: 64-bit FNV-1a, stable across Rust versions and machines (unlike
//! `DefaultHasher`). One definition for what identifies a file's bytes (a dataset in an
//! experiment's protocol) or a config's text (an experiment's dataset names).

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// FNV-1a's starting state.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `state` (start from [`FNV_OFFSET`]).
pub fn fnv1a(bytes: &[u8], mut state: u64) -> u64 {
    for &b in bytes {
        state ^= b as u64;
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

/// FNV-1a of a file's bytes, as 16 hex digits.
pub fn file_hash(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = FNV_OFFSET;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(format!("{h:016x}"));
        }
        h = fnv1a(&buf[..n], h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_strings() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b"", FNV_OFFSET), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar", FNV_OFFSET), 0x8594_4171_f739_67e8);
        // Chunked = whole.
        assert_eq!(
            fnv1a(b"bar", fnv1a(b"foo", FNV_OFFSET)),
            fnv1a(b"foobar", FNV_OFFSET)
        );
    }

    #[test]
    fn file_hash_reads_the_whole_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Longer than one read buffer, so the chunks chain.
        let bytes: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            file_hash(&path).unwrap(),
            format!("{:016x}", fnv1a(&bytes, FNV_OFFSET))
        );
        let e = file_hash(&dir.path().join("gone")).unwrap_err().to_string();
        assert!(e.contains("gone"), "{e}");
    }
}
