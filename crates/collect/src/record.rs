//! Recording learning histories: every transition of every stream, time-major, with its
//! compress marker (DESIGN §4), in the schema of [`ccad_core::history`].

use ccad_core::env::Environment;
use ccad_core::history::TaskHistory;
use ccad_core::tokens::marker_at;

/// Markers of `steps` transitions of `n_stream` streams, `[steps, n_stream]`: `<c>` where
/// `t % I == 0`, `</c>` where `t % I == I − 1`; a last region cut short has no end marker.
pub fn markers(steps: usize, n_stream: usize, interval: usize) -> Vec<u8> {
    (0..steps)
        .flat_map(|t| std::iter::repeat_n(marker_at(t, interval), n_stream))
        .collect()
}

/// The histories of a group of learners, filled step by step.
pub struct Recorder {
    pub histories: Vec<TaskHistory>,
}

impl Recorder {
    /// Buffers for `steps` transitions of `n_stream` streams per task.
    pub fn new(
        env: &dyn Environment,
        tasks: &[usize],
        steps: usize,
        n_stream: usize,
        interval: usize,
    ) -> Self {
        let d = env.obs_dim();
        let cells = steps * n_stream;
        let marks = markers(steps, n_stream, interval);
        let histories = tasks
            .iter()
            .map(|&task| TaskHistory {
                task,
                param_name: env.task_param_name().to_string(),
                params: env.task_params(task),
                optimal_return: env.optimal_return(task),
                steps,
                n_stream,
                obs_dim: d,
                states: vec![0; cells * d],
                next_states: vec![0; cells * d],
                actions: vec![0; cells],
                rewards: vec![0.0; cells],
                dones: vec![0; cells],
                compress_markers: marks.clone(),
            })
            .collect();
        Self { histories }
    }

    /// Transition `t` of stream `s` of learner `g`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        g: usize,
        t: usize,
        s: usize,
        state: &[i32],
        next_state: &[i32],
        action: usize,
        reward: f32,
        done: bool,
    ) {
        let h = &mut self.histories[g];
        let i = t * h.n_stream + s;
        let d = h.obs_dim;
        h.states[i * d..(i + 1) * d].copy_from_slice(state);
        h.next_states[i * d..(i + 1) * d].copy_from_slice(next_state);
        h.actions[i] = action as i32;
        h.rewards[i] = reward;
        h.dones[i] = done as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_time_major_with_short_last_region() {
        // I = 3, 7 steps, 2 streams: regions [0,3) [3,6) [6,7); the last has a start only.
        let m = markers(7, 2, 3);
        let per_t: Vec<u8> = m
            .chunks(2)
            .map(|c| {
                assert_eq!(c[0], c[1], "every stream has the same markers");
                c[0]
            })
            .collect();
        assert_eq!(per_t, vec![1, 0, 2, 1, 0, 2, 1]);
    }
}
