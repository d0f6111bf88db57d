//! Save and load: weights as SafeTensors ([`WEIGHTS_FILE`]) beside the [`AdModelConfig`] as
//! JSON ([`MODEL_CONFIG_FILE`]), each written atomically, so a folder alone rebuilds the model.

use std::path::Path;

use burn::store::{ApplyError, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use ccad_core::error::{Error, Result};

use crate::run_folder::{MODEL_CONFIG_FILE, WEIGHTS_FILE};
use crate::{AdModel, AdModelConfig};

impl AdModel {
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
        let mut store = SafetensorsStore::from_bytes(None);
        self.save_into(&mut store)
            .map_err(|e| Error::file(path, "weights", one_line(&e.to_string())))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| Error::file(path, "weights", one_line(&e.to_string())))?;
        ccad_core::atomic::write_atomic(path, &bytes)
    }

    /// Replace this model's weights with a SafeTensors file's. Every tensor must be present
    /// with this model's shape; otherwise a one-line error names the file and the tensor.
    pub fn load_weights(mut self, path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
