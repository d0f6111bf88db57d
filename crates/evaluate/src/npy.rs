//! The NumPy `.npy` format (version 1.0) for 2-D little-endian float32 arrays: enough to write
//! `eval_result.npy` for `numpy.load` and to read it back in tests.
//!
//! Layout: the magic `\x93NUMPY`, version bytes `1 0`, a little-endian u16 header length, then a
//! Python dict literal padded with spaces and ended by `\n` so the data starts at a multiple of
//! 64 bytes, then the values in C order.

use std::path::Path;

use ccad_core::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Magic, 2 version bytes, 2 header-length bytes.
const PREAMBLE: usize = MAGIC.len() + 4;
const ALIGN: usize = 64;

/// The bytes of a C-order float32 array of shape `[rows, cols]`.
///
/// # Panics
/// If `data.len() != rows * cols`.
pub fn npy_bytes(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(data.len(), rows * cols, "npy data length vs shape");
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that preamble + dict + spaces + '\n' is a multiple of ALIGN.
    let unpadded = PREAMBLE + dict.len() + 1;
    let pad = unpadded.next_multiple_of(ALIGN) - unpadded;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(PREAMBLE + header_len + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write a `[rows, cols]` float32 array atomically.
pub fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    ccad_core::atomic::write_atomic(path, &npy_bytes(data, rows, cols))
}

/// Parse a version-1.0, C-order, `<f4` array: (shape, values). Errors name `path`.
pub fn parse_npy_f32(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |m: &str| Error::file(path, "npy", m.to_string());
    if bytes.len() < PREAMBLE || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a .npy file (magic)"));
    }
    if bytes[6..8] != [1, 0] {
        return Err(bad("not version 1.0"));
    }
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let start = PREAMBLE + header_len;
    let header = bytes
        .get(PREAMBLE..start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("not a C-order little-endian float32 array"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let body = &bytes[start..];
    if body.len() != 4 * n {
        return Err(bad("data length does not match the shape"));
    }
    let values = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Ok((shape, values))
}

/// Read a file written by [`write_npy`].
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy_f32(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_and_values_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eval_result.npy");
        let data = [0.0, 1.5, -2.0, 13.0, 20.0, 0.25];
        write_npy(&p, &data, 2, 3).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Dict "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" is 59 bytes;
        // 10 + 59 + 1 = 70 → padded to 128: header length 118, data at byte 128.
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 118);
        assert_eq!(bytes.len(), 128 + 6 * 4);
        assert_eq!(bytes[127], b'\n');
        let header = std::str::from_utf8(&bytes[10..128]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        // 1.5f32 = 0x3FC00000, little-endian at the second value's slot.
        assert_eq!(&bytes[132..136], &[0x00, 0x00, 0xC0, 0x3F]);
        let (shape, values) = read_npy_f32(&p).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(values, data);
    }

    #[test]
    fn every_header_ends_on_a_64_byte_boundary() {
        for (r, c) in [(1, 1), (8, 500), (24, 10), (123_456, 7)] {
            let b = npy_bytes(&vec![0.0; r * c], r, c);
            let h = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + h) % 64, 0, "({r}, {c})");
            assert_eq!(b[10 + h - 1], b'\n');
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let p = Path::new("x.npy");
        let e = parse_npy_f32(b"hello world", p).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("magic"), "{e}");
        let mut b = npy_bytes(&[1.0, 2.0], 1, 2);
        b.pop();
        let e = parse_npy_f32(&b, p).unwrap_err().to_string();
        assert!(e.contains("does not match the shape"), "{e}");
    }
}
