//! Where the learners' numbers are computed: an [`crate::ppo::Engine`], chosen per run.
//!
//! - [`crate::ppo::NativeEngine`]: plain Rust, rayon over learners (the fast path).
//! - [`crate::burn_learners::BurnEngine`]: burn, all learners stacked on a task axis and every
//!   minibatch step one batched forward/backward.

/// Which engine a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// Plain Rust, rayon over learners (checked against burn's autodiff in the tests).
    #[default]
    Native,
    /// burn, learners stacked on a task axis, one batched step per minibatch.
    Burn,
}
