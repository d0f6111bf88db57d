//! Every value's range, section by section. Error: (field, message).

use super::{
    Boundary, Config, ContextMode, EnvConfig, EnvName, EvalConfig, Keep, ModelConfig, Objective,
    PpoConfig, TrainConfig,
};

type Check = Result<(), (&'static str, String)>;

impl Config {
    /// Check every value's range. Error: (field, message).
    pub fn validate(&self) -> Check {
        env(&self.env)?;
        ppo(&self.ppo)?;
        collect(self)?;
        if !(2..=limits::TOKENS).contains(&self.dataset.n_transit) {
            return Err((
                "dataset.n_transit",
                format!(
                    "must be in [2, {}], got {}",
                    limits::TOKENS,
                    self.dataset.n_transit
                ),
            ));
        }
        pos("dataset.prefetch", self.dataset.prefetch)?;
        model(&self.model)?;
        train(&self.train)?;
        eval(&self.eval)?;
        memory(self)
    }
}

impl EnvConfig {
    /// Check the `[env]` section alone (for a file read without its config). Error: (field,
    /// message).
    pub fn validate(&self) -> Check {
        env(self)
    }
}

/// Upper bounds on sizes: far beyond any useful run, low enough that no product of them
/// overflows and that a typo fails here in one line instead of as an allocation abort or an
/// integer overflow deep inside a run.
mod limits {
    pub const GRID: usize = 1_000;
    /// Tasks in use (the split shuffles a list of them): Dark Room's 1,000² still fits,
    /// Key-to-Door's g² · (g² − 1) beyond a 56-sided grid needs `env.n_tasks`.
    pub const TASKS: usize = 10_000_000;
    pub const HORIZON: usize = 1_000_000;
    pub const STREAMS: usize = 100_000;
    pub const ROLLOUT_STEPS: usize = 100_000;
    pub const WIDTH: usize = 65_536;
    pub const LAYERS: usize = 1_024;
    pub const TOKENS: usize = 1_000_000;
    pub const BATCH: usize = 1_000_000;
    pub const COUNT: usize = 1_000_000_000;
    /// Memory tokens per region, and tokens kept.
    pub const MEMORY: usize = 1_024;
}

/// `1 ..= max`.
fn size(field: &'static str, v: usize, max: usize) -> Check {
    if !(1..=max).contains(&v) {
        return Err((field, format!("must be in [1, {max}], got {v}")));
    }
    Ok(())
}

fn pos(field: &'static str, v: usize) -> Check {
    if v == 0 {
        return Err((field, "must be > 0".into()));
    }
    Ok(())
}

fn range(field: &'static str, v: f64, lo: f64, hi: f64) -> Check {
    if !(v >= lo && v <= hi) {
        return Err((field, format!("must be in [{lo}, {hi}], got {v}")));
    }
    Ok(())
}

fn positive(field: &'static str, v: f64) -> Check {
    if !(v > 0.0 && v.is_finite()) {
        return Err((field, format!("must be > 0, got {v}")));
    }
    Ok(())
}

/// A name that becomes a file or folder name: no separators, nothing to escape.
fn plain_name(field: &'static str, name: &str) -> Check {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    // "." and ".." would name the folder itself or its parent.
    if !plain || name.chars().all(|c| c == '.') {
        return Err((
            field,
            "must be a plain name of letters, digits, '-', '_' or '.' (not only dots)".into(),
        ));
    }
    Ok(())
}

/// A run name: plain names joined by '/' (a run inside an experiment's folder).
fn run_path(field: &'static str, name: &str) -> Check {
    name.split('/').try_for_each(|part| plain_name(field, part))
}

fn env(e: &EnvConfig) -> Check {
    if !(2..=limits::GRID).contains(&e.grid) {
        return Err((
            "env.grid",
            format!("must be in [2, {}], got {}", limits::GRID, e.grid),
        ));
    }
    size("env.horizon", e.horizon, limits::HORIZON)?;
    if let Some(need) = e.name.horizon_needed(e.grid)
        && e.horizon < need
    {
        return Err((
            "env.horizon",
            format!(
                "must be at least {need} so that every {} task on a {}-sided grid can earn its \
                 optimum (the farthest: {}), got {}",
                e.name.as_str(),
                e.grid,
                match e.name {
                    EnvName::KeyToDoor => "start, key in a far corner, door in the opposite one",
                    _ => "start to the farthest corner",
                },
                e.horizon
            ),
        ));
    }
    let available = e.name.task_count(e.grid);
    if e.n_tasks > available {
        return Err((
            "env.n_tasks",
            format!(
                "{} has only {available} tasks, got {}",
                e.name.as_str(),
                e.n_tasks
            ),
        ));
    }
    let in_use = if e.n_tasks == 0 { available } else { e.n_tasks };
    if in_use > limits::TASKS {
        return Err((
            "env.n_tasks",
            format!(
                "{in_use} tasks in use ({} on a {}-sided grid has {available}), at most {}: \
                 set env.n_tasks or a smaller env.grid",
                e.name.as_str(),
                e.grid,
                limits::TASKS
            ),
        ));
    }
    range("env.train_ratio", e.train_ratio, 0.0, 1.0)?;
    if (e.n_train_tasks == 0) != (e.n_test_tasks == 0) {
        return Err((
            "env.n_train_tasks",
            format!(
                "n_train_tasks and n_test_tasks go together (both > 0, or both 0), got {} and {}",
                e.n_train_tasks, e.n_test_tasks
            ),
        ));
    }
    for (i, t) in e.test_tasks.iter().enumerate() {
        if e.test_tasks[..i].contains(t) {
            return Err(("env.test_tasks", format!("{t:?} is listed twice")));
        }
    }
    Ok(())
}

fn ppo(p: &PpoConfig) -> Check {
    size("ppo.n_streams", p.n_streams, limits::STREAMS)?;
    if !(2..=limits::ROLLOUT_STEPS).contains(&p.n_steps) {
        return Err((
            "ppo.n_steps",
            format!(
                "must be in [2, {}], got {}",
                limits::ROLLOUT_STEPS,
                p.n_steps
            ),
        ));
    }
    pos("ppo.minibatch_size", p.minibatch_size)?;
    if p.minibatch_size > p.n_streams * p.n_steps {
        return Err((
            "ppo.minibatch_size",
            format!(
                "must be <= n_streams * n_steps = {}, got {}",
                p.n_streams * p.n_steps,
                p.minibatch_size
            ),
        ));
    }
    pos("ppo.n_epochs", p.n_epochs)?;
    positive("ppo.lr", p.lr)?;
    positive("ppo.adam_eps", p.adam_eps)?;
    range("ppo.gamma", p.gamma, 0.0, 1.0)?;
    range("ppo.gae_lambda", p.gae_lambda, 0.0, 1.0)?;
    positive("ppo.clip_range", p.clip_range)?;
    range("ppo.ent_coef", p.ent_coef, 0.0, 1e3)?;
    range("ppo.vf_coef", p.vf_coef, 0.0, 1e3)?;
    positive("ppo.max_grad_norm", p.max_grad_norm)?;
    size("ppo.hidden", p.hidden, limits::WIDTH)?;
    size("ppo.total_steps", p.total_steps, limits::COUNT)
}

fn collect(cfg: &Config) -> Check {
    let ci = cfg.compress_interval();
    if !(2..=limits::TOKENS).contains(&ci) {
        return Err((
            "collect.compress_interval",
            format!("must be in [2, {}], got {ci}", limits::TOKENS),
        ));
    }
    plain_name("collect.dataset", &cfg.collect.dataset)
}

fn model(m: &ModelConfig) -> Check {
    size("model.d_model", m.d_model, limits::WIDTH)?;
    size("model.n_layers", m.n_layers, limits::LAYERS)?;
    size("model.n_heads", m.n_heads, m.d_model)?;
    if !m.d_model.is_multiple_of(m.n_heads) {
        return Err((
            "model.n_heads",
            format!("must divide d_model = {}, got {}", m.d_model, m.n_heads),
        ));
    }
    size("model.d_ff", m.d_ff, limits::WIDTH * 16)?;
    if !(0.0..1.0).contains(&m.dropout) {
        return Err((
            "model.dropout",
            format!("must be in [0, 1), got {}", m.dropout),
        ));
    }
    range("model.type_loss_weight", m.type_loss_weight, 0.0, 1e3)
}

fn train(t: &TrainConfig) -> Check {
    run_path("train.run", &t.run)?;
    size("train.batch_size", t.batch_size, limits::BATCH)?;
    size("train.steps", t.steps, limits::COUNT)?;
    positive("train.lr", t.lr)?;
    range("train.beta1", t.beta1, 0.0, 0.999_999)?;
    range("train.beta2", t.beta2, 0.0, 0.999_999)?;
    range("train.weight_decay", t.weight_decay, 0.0, 1.0)?;
    positive("train.grad_clip", t.grad_clip)?;
    pos("train.summary_interval", t.summary_interval)?;
    pos("train.eval_interval", t.eval_interval)?;
    pos("train.eval_batches", t.eval_batches)?;
    pos("train.ckpt_interval", t.ckpt_interval)?;
    pos("train.keep_checkpoints", t.keep_checkpoints)?;
    pos("train.icl_episodes", t.icl_episodes)
}

fn eval(v: &EvalConfig) -> Check {
    size("eval.episodes", v.episodes, limits::COUNT)?;
    size("eval.seeds", v.seeds, limits::BATCH)?;
    positive("eval.temperature", v.temperature)
}

/// `[memory]`, and what the memory mode refuses elsewhere (its regions are always `I` long,
/// and it trains dense).
fn memory(cfg: &Config) -> Check {
    let m = &cfg.memory;
    size("memory.tokens", m.tokens, limits::MEMORY)?;
    size("memory.keep_max", m.keep_max, limits::MEMORY)?;
    if m.train_regions > limits::COUNT {
        return Err((
            "memory.train_regions",
            format!("must be at most {}, got {}", limits::COUNT, m.train_regions),
        ));
    }
    if cfg.dataset.context != ContextMode::Memory {
        return Ok(());
    }
    if cfg.model.objective != Objective::Dense {
        return Err((
            "model.objective",
            "dataset.context = \"memory\" trains the dense objective only; set \"dense\"".into(),
        ));
    }
    if cfg.eval.boundary != Boundary::Fixed {
        return Err((
            "eval.boundary",
            "dataset.context = \"memory\" closes regions every compress_interval steps; set \"fixed\"".into(),
        ));
    }
    if m.train_regions > 0 && m.keep == Keep::Rewarded {
        return Err((
            "memory.train_regions",
            "keep = \"rewarded\" trains every region as its own sequence already; use 0".into(),
        ));
    }
    Ok(())
}
