//! `report.md`: the comparison table, training setup, and each run relative to the first.

use std::fmt::Write;

use crate::curves::{Curve, TARGET};
use crate::inputs::RunRecord;

/// Episodes (1-based) whose normalised return the table shows, before the last one.
pub const EPISODES: [usize; 3] = [1, 10, 50];

const NONE: &str = "–";

fn ratio(x: f64) -> String {
    format!("{x:.3}")
}

fn or_none(v: Option<f64>) -> String {
    v.map_or(NONE.to_string(), ratio)
}

fn memory(mib: f64) -> String {
    // train records 0 where the machine cannot tell.
    if mib > 0.0 {
        format!("{mib:.0}")
    } else {
        NONE.to_string()
    }
}

/// A count or rate with `decimals` decimals; train_stats.json from before labels were
/// counted holds 0 there.
fn counted(v: f64, decimals: usize) -> String {
    if v > 0.0 {
        format!("{v:.decimals$}")
    } else {
        NONE.to_string()
    }
}

/// Episodes to [`TARGET`], or "never".
fn to_target(c: &Curve) -> String {
    c.episodes_to(TARGET)
        .map_or("never".to_string(), |e| e.to_string())
}

/// Signed percentage change of `new` against `base`; "–" when `base` is not positive.
fn change(new: f64, base: f64) -> String {
    if base > 0.0 && new > 0.0 {
        format!("{:+.1}%", (new / base - 1.0) * 100.0)
    } else {
        NONE.to_string()
    }
}

/// The whole report. `plot` is the curves' PNG file name beside it.
pub fn render(name: &str, runs: &[(RunRecord, Curve)], plot: &str) -> String {
    let mut s = String::new();
    let w = &mut s;
    // Writing to a String cannot fail.
    let _ = writeln!(w, "# Report: {name}\n");
    let _ = writeln!(
        w,
        "Runs: {}.\n",
        runs.iter()
            .map(|(r, _)| format!("`{}`", r.dir.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        w,
        "Normalised return = return / the task's optimal return, averaged over the evaluated \
         environments (tasks × seeds) with a positive optimum; episodes count from 1. \
         \"to {:.0}%\" is the first episode whose mean reaches {TARGET}. Samples/s and peak memory \
         are train's own records (`train_stats.json`).\n",
        TARGET * 100.0
    );
    let _ = writeln!(
        w,
        "![In-context learning curves: mean normalised return ± one standard error]({plot})\n"
    );

    let _ = writeln!(w, "## In-context learning\n");
    let _ = writeln!(
        w,
        "| run | context | objective | max context tokens | labels trained | labels/s | samples/s | peak memory (MiB) | tasks | envs | episodes | ep 1 | ep 10 | ep 50 | last | episodes to {:.0}% |",
        TARGET * 100.0
    );
    let _ = writeln!(
        w,
        "|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for (r, c) in runs {
        let at: Vec<String> = EPISODES.iter().map(|&e| or_none(c.at(e))).collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.stats.context,
            r.stats.objective,
            r.stats.max_context_tokens,
            counted(r.stats.labels_trained as f64, 0),
            counted(r.stats.labels_per_sec, 1),
            r.stats.samples_per_sec,
            memory(r.stats.peak_memory_mib),
            r.eval.task_set,
            c.n_envs,
            r.eval.n_episodes,
            at[0],
            at[1],
            at[2],
            ratio(c.last()),
            to_target(c),
        );
    }

    let _ = writeln!(w, "\n## Training\n");
    let _ = writeln!(
        w,
        "| run | dataset | backend | batch | steps | s/step | parameters | checkpoint |"
    );
    let _ = writeln!(w, "|---|---|---|--:|--:|--:|--:|--:|");
    for (r, _) in runs {
        let st = &r.stats;
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {}/{} | {:.3} | {} | {} |",
            r.name,
            r.config.collect.dataset,
            st.backend,
            st.batch_size,
            st.steps_done,
            st.steps_total,
            st.seconds_per_step,
            st.n_params,
            r.eval
                .checkpoint_step
                .map_or(NONE.to_string(), |s| s.to_string()),
        );
    }

    if let Some(((base, base_curve), rest)) = runs.split_first()
        && !rest.is_empty()
    {
        let _ = writeln!(w, "\n## Relative to {}\n", base.name);
        let _ = writeln!(
            w,
            "| run | max context tokens | labels trained | labels/s | samples/s | peak memory | last − {0} last | to {1:.0}% (episodes) |",
            base.name,
            TARGET * 100.0
        );
        let _ = writeln!(w, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for (r, c) in rest {
            let episodes = format!("{} vs {}", to_target(c), to_target(base_curve));
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {:+.3} | {} |",
                r.name,
                change(
                    r.stats.max_context_tokens as f64,
                    base.stats.max_context_tokens as f64
                ),
                change(
                    r.stats.labels_trained as f64,
                    base.stats.labels_trained as f64
                ),
                change(r.stats.labels_per_sec, base.stats.labels_per_sec),
                change(r.stats.samples_per_sec, base.stats.samples_per_sec),
                change(r.stats.peak_memory_mib, base.stats.peak_memory_mib),
                c.last() - base_curve.last(),
                episodes,
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(change(100.0, 120.0), "-16.7%");
        assert_eq!(change(300.0, 500.0), "-40.0%");
        assert_eq!(change(5.0, 0.0), NONE);
        assert_eq!(memory(0.0), NONE);
        assert_eq!(memory(332.8), "333");
        assert_eq!(or_none(None), NONE);
        assert_eq!(or_none(Some(0.825)), "0.825");
    }
}
