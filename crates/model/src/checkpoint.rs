//! Save and load: weights as SafeTensors ([`WEIGHTS_FILE`]) beside the [`AdModelConfig`] as
//! JSON ([`MODEL_CONFIG_FILE`]), each written atomically, so a folder alone rebuilds the model.
//!
//! A weights file carries, in its header's metadata, the FNV-1a digest of every parameter's
//! values in the model's order ([`DIGEST_KEY`]); loading recomputes it and refuses a file
//! whose weights no longer match (a flipped bit), and refuses non-finite weights. Files
//! written before the digest existed load without the check.

use std::path::Path;

use burn::store::{ApplyError, ModuleSnapshot, SafetensorsStore, bridge};
use burn::tensor::Device;
use ccad_core::error::{Error, Result};

use crate::run_folder::{MODEL_CONFIG_FILE, WEIGHTS_FILE};
use crate::{AdModel, AdModelConfig};

/// Metadata key of the parameters' digest in a weights file's header.
pub const DIGEST_KEY: &str = "ccad_params_fnv1a";

impl AdModel {
    /// FNV-1a of every parameter's `f32` values (little-endian bytes) in the model's order,
    /// as 16 hex digits; Err names the first tensor holding a NaN or an infinity.
    pub fn params_digest(&self) -> std::result::Result<String, String> {
        let mut h = ccad_core::hash::FNV_OFFSET;
        for t in self.collect(None, None, false) {
            let values = bridge::to_data(&t)
                .map_err(|e| format!("{}: {e}", t.name))?
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| format!("{}: {e:?}", t.name))?;
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("{}: holds a non-finite value", t.name));
            }
            for v in values {
                h = ccad_core::hash::fnv1a(&v.to_le_bytes(), h);
            }
        }
        Ok(format!("{h:016x}"))
    }

    /// Write `dir/model.json` and `dir/model.safetensors` (folder created if missing), each
    /// atomically: a crash leaves the old file or the new one, never a partial one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.config().save(&dir.join(MODEL_CONFIG_FILE))?;
        self.save_weights(&dir.join(WEIGHTS_FILE))
    }

    /// Rebuild a model from a folder written by [`save`](Self::save), on `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = AdModelConfig::load(&dir.join(MODEL_CONFIG_FILE))?;
        config.init(device).load_weights(&dir.join(WEIGHTS_FILE))
    }

    /// Write the weights alone as SafeTensors, atomically.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let digest = self
            .params_digest()
            .map_err(|e| Error::file(path, "weights", format!("not saved: {e}")))?;
        let mut store = SafetensorsStore::from_bytes(None).metadata(DIGEST_KEY, digest);
        self.save_into(&mut store)
            .map_err(|e| Error::file(path, "weights", one_line(&e.to_string())))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| Error::file(path, "weights", one_line(&e.to_string())))?;
        ccad_core::atomic::write_atomic(path, &bytes)
    }

    /// Replace this model's weights with a SafeTensors file's. Every tensor must be present
    /// with this model's shape; otherwise a one-line error names the file and the tensor.
    pub fn load_weights(self, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let recorded = header_metadata(&bytes, DIGEST_KEY);
        let model = self.apply_weights(path, bytes)?;
        let digest = model
            .params_digest()
            .map_err(|e| Error::file(path, "weights", e))?;
        if let Some(recorded) = recorded
            && recorded != digest
        {
            return Err(Error::file(
                path,
                "weights",
                format!(
                    "the weights hash to {digest}, the file recorded {recorded} when written: the file is corrupt"
                ),
            ));
        }
        Ok(model)
    }

    /// Apply a SafeTensors file's bytes to this model (every tensor present, same shapes).
    fn apply_weights(mut self, path: &Path, bytes: Vec<u8>) -> Result<Self> {
        // Collect every problem instead of failing inside the store, whose messages span
        // many lines; report the first one ourselves.
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .validate(false)
            .allow_partial(true);
        let result = self
            .load_from(&mut store)
            .map_err(|e| Error::file(path, "weights", one_line(&e.to_string())))?;
        if let Some(e) = result.errors.first() {
            return Err(match e {
                ApplyError::ShapeMismatch {
                    path: tensor,
                    expected,
                    found,
                } => Error::file(
                    path,
                    tensor.as_str(),
                    format!(
                        "shape {:?} in the file, the model has {:?} (checkpoint of a model of another shape?)",
                        found.as_slice(),
                        expected.as_slice()
                    ),
                ),
                other => Error::file(path, "weights", one_line(&other.to_string())),
            });
        }
        if let Some((tensor, _)) = result.missing.first() {
            return Err(Error::file(
                path,
                tensor.as_str(),
                format!(
                    "missing from the file ({} of {} model tensors missing; checkpoint of another model?)",
                    result.missing.len(),
                    result.missing.len() + result.applied.len()
                ),
            ));
        }
        if let Some(tensor) = result.unused.first() {
            return Err(Error::file(
                path,
                tensor.as_str(),
                "in the file but not in the model (checkpoint of another model?)",
            ));
        }
        Ok(self)
    }
}

/// `key` of a SafeTensors file's `__metadata__` (an 8-byte little-endian header length, then
/// the JSON header), if the header parses and holds it.
fn header_metadata(bytes: &[u8], key: &str) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..end)?).ok()?;
    Some(header.get("__metadata__")?.get(key)?.as_str()?.to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
