//! [`Token`] and [`batch_from_tokens`] live in `ccad_core::context` (the token grammar);
//! re-exported here so `model::Token` keeps working.

pub use ccad_core::context::{Token, batch_from_tokens};
