//! [`AdModelConfig`]: everything needed to rebuild an [`AdModel`](crate::AdModel) from disk,
//! the experiment's `[model]` section plus the dimensions that come from the data.

use std::path::Path;

use burn::tensor::Device;
use ccad_core::config::ModelConfig;
use ccad_core::env::Environment;
use ccad_core::error::{Error, Result};
use ccad_core::tokens::token_type;
use serde::{Deserialize, Serialize};

use crate::AdModel;

/// Shape and regularisation of an [`AdModel`]. Stored as JSON beside the weights
/// ([`crate::run_folder::MODEL_CONFIG_FILE`]) so evaluation can rebuild the model from a folder alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdModelConfig {
    /// Length of a transition's feature vector, `concat(s, one_hot(a), r, s')`
    /// (`ccad_core::tokens::transition_feature_dim`).
    pub feat_dim: usize,
    /// Number of discrete states the query embedding covers.
    pub n_states: usize,
    /// Size of the action head.
    pub n_actions: usize,
    /// Longest sequence (rows of the position embedding): `2I + 3` compressed, `n_transit` window.
    pub max_len: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    /// Dropout on the embeddings and on both residual branches of every block.
    pub dropout: f64,
    /// Dropout on the attention weights (`[B, H, L, L]`: most of dropout's random numbers,
    /// see the README's bench). [`AdModelConfig::new`] sets it to `dropout`.
    pub attention_dropout: f64,
    /// `loss = CE(action) + type_loss_weight · CE(token type)`.
    pub type_loss_weight: f64,
    /// Rows of the token-type embedding: 3 (transition or query, `<c>`, `</c>`), or 5 when
    /// the model also embeds memory and kept tokens. Older model.json files lack it: 3.
    #[serde(default = "three_token_types")]
    pub token_types: usize,
    /// Memory slots (or kept-token slots) the model embeds; 0: none, and no slot table
    /// (`ccad_core::tokens::slot_table`). Older model.json files lack it: 0.
    #[serde(default)]
    pub slots: usize,
}

fn three_token_types() -> usize {
    token_type::COUNT
}

/// The data's side of a model's shape: what the environment and the token layout report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataDims {
    /// Width of a transition token's features, as the token layout reports it.
    pub feat_dim: usize,
    pub n_states: usize,
    pub n_actions: usize,
    /// Longest sequence the token layout produces (positions, for chained layouts).
    pub max_len: usize,
    /// Memory or kept-token slots the layout embeds (0 for layouts without them).
    pub slots: usize,
}

impl DataDims {
    /// States and actions from `env`; feature width and longest sequence from the token
    /// layout (the dataset's `feat_dim()` / `max_len()` in training, the context in
    /// evaluation).
    pub fn new(env: &dyn Environment, feat_dim: usize, max_len: usize, slots: usize) -> Self {
        Self {
            feat_dim,
            n_states: env.n_states(),
            n_actions: env.n_actions(),
            max_len,
            slots,
        }
    }
}

impl AdModelConfig {
    /// Floating-point operations (2 per multiply-add) of incremental inference with a
    /// key/value cache: `tokens` tokens through every layer — fused q/k/v (2·d·3d), output
    /// projection (2·d·d), MLP (2·2·d·d_ff) — attending to `keys` keys in all (scores and
    /// weighted sum, 2·2·d per key per layer), and both heads at `reads` positions
    /// (2·d·(n_actions + 3)). Embeddings, norms, softmax and activations (O(d) per token)
    /// are left out.
    pub fn decode_flops(&self, tokens: u64, keys: u64, reads: u64) -> f64 {
        let (d, l) = (self.d_model as f64, self.n_layers as f64);
        let per_token = l * (2.0 * d * 3.0 * d + 2.0 * d * d + 4.0 * d * self.d_ff as f64);
        let per_key = l * 4.0 * d;
        let heads = 2.0 * d * (self.n_actions + ccad_core::tokens::token_type::COUNT) as f64;
        tokens as f64 * per_token + keys as f64 * per_key + reads as f64 * heads
    }

    /// Token kinds the model embeds: up to the query, or also memory and kept tokens.
    pub fn kinds(&self) -> usize {
        if self.token_types > token_type::COUNT {
            ccad_core::tokens::token_kind::COUNT
        } else {
            ccad_core::tokens::token_kind::QUERY as usize + 1
        }
    }

    /// The model a run trains: the config's `[model]` section over the data's dimensions.
    /// Training builds its model with it and evaluation checks a checkpoint against it.
    pub fn for_data(model: &ModelConfig, data: DataDims) -> Self {
        Self::new(
            model,
            data.feat_dim,
            data.n_states,
            data.n_actions,
            data.max_len,
        )
        .with_slots(data.slots)
    }

    /// The same model embedding `slots` memory or kept-token slots (and then 5 token types).
    pub fn with_slots(self, slots: usize) -> Self {
        Self {
            slots,
            token_types: if slots > 0 {
                token_type::WITH_MEMORY
            } else {
                token_type::COUNT
            },
            ..self
        }
    }

    /// The dimensions this model was built for.
    pub fn data_dims(&self) -> DataDims {
        DataDims {
            feat_dim: self.feat_dim,
            n_states: self.n_states,
            n_actions: self.n_actions,
            max_len: self.max_len,
            slots: self.slots,
        }
    }

    /// The experiment's `[model]` section plus the data's dimensions, one by one
    /// ([`for_data`](Self::for_data) takes them together).
    pub fn new(
        model: &ModelConfig,
        feat_dim: usize,
        n_states: usize,
        n_actions: usize,
        max_len: usize,
    ) -> Self {
        Self {
            feat_dim,
            n_states,
            n_actions,
            max_len,
            d_model: model.d_model,
            n_layers: model.n_layers,
            n_heads: model.n_heads,
            d_ff: model.d_ff,
            dropout: model.dropout,
            attention_dropout: model.dropout,
            type_loss_weight: model.type_loss_weight,
            token_types: token_type::COUNT,
            slots: 0,
        }
    }

    /// Check the values a model can be built from. Error: (field, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("feat_dim", self.feat_dim),
            ("n_states", self.n_states),
            ("n_actions", self.n_actions),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err((field, "must be > 0".into()));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err((
                "n_heads",
                format!(
                    "must divide d_model ({}), got {}",
                    self.d_model, self.n_heads
                ),
            ));
        }
        for (field, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err((field, format!("must be in [0, 1), got {p}")));
            }
        }
        let types = [token_type::COUNT, token_type::WITH_MEMORY];
        if !types.contains(&self.token_types) {
            return Err((
                "token_types",
                format!("must be 3 or 5, got {}", self.token_types),
            ));
        }
        if self.slots > 1_024 || (self.slots > 0) != (self.token_types == token_type::WITH_MEMORY) {
            return Err((
                "slots",
                format!(
                    "must be in [0, 1024], and > 0 exactly when token_types is 5; got {} with {} token types",
                    self.slots, self.token_types
                ),
            ));
        }
        if !(self.type_loss_weight >= 0.0 && self.type_loss_weight.is_finite()) {
            return Err((
                "type_loss_weight",
                format!("must be >= 0, got {}", self.type_loss_weight),
            ));
        }
        Ok(())
    }

    /// A freshly initialised model on `device` (seed it with `ccad_core::backend::seed_device`).
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails: configs from files go through [`load`](Self::load).
    pub fn init(&self, device: &Device) -> AdModel {
        if let Err((field, msg)) = self.validate() {
            panic!("AdModelConfig.{field}: {msg}");
        }
        AdModel::new(self, device)
    }

    /// Write as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("config serialises");
        ccad_core::atomic::write_atomic(path, text.as_bytes())
    }

    /// Read and validate; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| Error::file(path, "model config", e.to_string()))?;
        config
            .validate()
            .map_err(|(field, msg)| Error::file(path, field, msg))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> AdModelConfig {
        AdModelConfig::new(&ModelConfig::default(), 10, 81, 5, 163)
    }

    #[test]
    fn decode_flops_by_hand() {
        // d 64, 4 layers, ff 256, 5 actions. Per token per layer: 2·64·192 + 2·64·64 +
        // 4·64·256 = 24 576 + 8 192 + 65 536 = 98 304, × 4 layers = 393 216. Per key: 4·64 × 4
        // = 1 024. Heads: 2·64·(5 + 3) = 1 024.
        let c = small();
        assert_eq!(c.decode_flops(1, 0, 0), 393_216.0);
        assert_eq!(c.decode_flops(0, 1, 0), 1_024.0);
        assert_eq!(c.decode_flops(0, 0, 1), 1_024.0);
        // Two tokens at positions 9 and 10 (10 + 11 keys), one read.
        assert_eq!(
            c.decode_flops(2, 21, 1),
            2.0 * 393_216.0 + 21.0 * 1_024.0 + 1_024.0
        );
    }

    #[test]
    fn takes_the_model_section_and_the_data_dims() {
        let c = small();
        assert_eq!((c.d_model, c.n_layers, c.n_heads, c.d_ff), (64, 4, 4, 256));
        assert_eq!(
            (c.feat_dim, c.n_states, c.n_actions, c.max_len),
            (10, 81, 5, 163)
        );
        assert_eq!(c.type_loss_weight, 0.1);
        assert_eq!((c.dropout, c.attention_dropout), (0.1, 0.1));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn for_data_takes_states_and_actions_from_the_environment() {
        // What train's trainer and bench built before: `new(&cfg.model, ds.feat_dim(),
        // env.n_states(), env.n_actions(), ds.max_len())`, Dark Room 9x9 with I = 80.
        let env = ccad_core::env::make_env(&ccad_core::config::EnvConfig::default());
        let dims = DataDims::new(env.as_ref(), 10, 163, 0);
        assert_eq!(
            dims,
            DataDims {
                feat_dim: 10,
                n_states: 81,
                n_actions: 5,
                max_len: 163,
                slots: 0,
            }
        );
        let model = ModelConfig::default();
        assert_eq!(AdModelConfig::for_data(&model, dims), small());
        assert_eq!(small().data_dims(), dims);
        // Evaluation's expectation for a checkpoint: its own dims under the run's `[model]`.
        let other = ModelConfig {
            d_model: 32,
            ..model
        };
        let expected = AdModelConfig::for_data(&other, small().data_dims());
        assert_eq!((expected.d_model, expected.max_len), (32, 163));
    }

    #[test]
    fn refuses_heads_that_do_not_divide_the_width() {
        let c = AdModelConfig {
            n_heads: 3,
            ..small()
        };
        assert_eq!(c.validate().unwrap_err().0, "n_heads");
        let c = AdModelConfig {
            dropout: 1.0,
            ..small()
        };
        assert_eq!(c.validate().unwrap_err().0, "dropout");
        let c = AdModelConfig {
            max_len: 0,
            ..small()
        };
        assert_eq!(c.validate().unwrap_err().0, "max_len");
    }

    #[test]
    fn json_round_trip_and_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.json");
        small().save(&p).unwrap();
        assert_eq!(AdModelConfig::load(&p).unwrap(), small());

        std::fs::write(&p, r#"{"feat_dim": 1}"#).unwrap();
        let err = AdModelConfig::load(&p).unwrap_err().to_string();
        assert!(
            err.contains("model.json") && err.contains("missing field"),
            "{err}"
        );
        assert!(!err.contains('\n'));

        let mut bad = serde_json::to_value(small()).unwrap();
        bad["n_heads"] = 5.into();
        std::fs::write(&p, bad.to_string()).unwrap();
        let err = AdModelConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("model.json: n_heads: must divide"), "{err}");
    }

    #[test]
    fn older_model_json_loads_with_three_token_types_and_no_slots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.json");
        let mut old = serde_json::to_value(small()).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("token_types");
        map.remove("slots");
        std::fs::write(&p, old.to_string()).unwrap();
        let c = AdModelConfig::load(&p).unwrap();
        assert_eq!((c.token_types, c.slots), (3, 0));

        let memory = small().with_slots(4);
        assert_eq!((memory.token_types, memory.slots), (5, 4));
        memory.save(&p).unwrap();
        assert_eq!(AdModelConfig::load(&p).unwrap(), memory);
        let bad = AdModelConfig {
            token_types: 3,
            ..memory
        };
        assert_eq!(bad.validate().unwrap_err().0, "slots");
    }
}
