//! What the `dataset` binary computes for one task of a history file: marker counts, every
//! region's return per stream, and per region the mean ± std over streams. Plain functions
//! over the dataset crate's [`Corpus`]; printing and drawing are elsewhere.

use std::path::{Path, PathBuf};

use ccad_core::env::Environment;
use ccad_core::history::HistoryReader;
use ccad_core::tokens::marker;
use ccad_core::{Error, Result};
use dataset::{Corpus, Histories, env_from_meta};

/// An opened history file and the environment its attributes name.
pub struct File {
    pub path: PathBuf,
    pub reader: HistoryReader,
    pub env: Box<dyn Environment>,
}

impl File {
    pub fn open(path: &Path) -> Result<Self> {
        let reader = HistoryReader::open(path)?;
        let env = env_from_meta(path, &reader.meta)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            env,
        })
    }

    /// Every task of the file (trained on and held out), ascending.
    pub fn tasks(&self) -> Vec<usize> {
        let m = &self.reader.meta;
        let mut all = [m.train_tasks.clone(), m.test_tasks.clone()].concat();
        all.sort_unstable();
        all
    }

    pub fn held_out(&self, task: usize) -> bool {
        self.reader.meta.test_tasks.contains(&task)
    }

    /// The default task: the first held-out one (else the first task).
    pub fn default_task(&self) -> Option<usize> {
        let m = &self.reader.meta;
        m.test_tasks.first().or(m.train_tasks.first()).copied()
    }

    /// One task's streams, checked against the environment (replayed) and cut into regions by
    /// the dataset crate, summarised. `--task` names a task the file does not list → an error
    /// naming the flag.
    pub fn load_task(&self, task: usize) -> Result<(Corpus, TaskSummary)> {
        let tasks = self.tasks();
        if !tasks.contains(&task) {
            return Err(Error::file(
                &self.path,
                "--task",
                format!(
                    "{task} is not a task of this file (it holds {})",
                    ranges(&tasks)
                ),
            ));
        }
        let env = self.env.as_ref();
        let th = self.reader.read_task(task, env.task_param_name())?;
        let mut h = Histories::empty(&self.path, self.reader.meta.clone(), env);
        h.push_task(&th, env)?;
        let corpus = Corpus::new(h)?;
        let summary = TaskSummary {
            task,
            param_name: th.param_name.clone(),
            params: th.params.clone(),
            optimal: th.optimal_return as f64,
            steps: th.steps,
            n_stream: th.n_stream,
            markers: count_markers(&th.compress_markers),
            streams: region_returns(&corpus, env.horizon()),
            regions: Vec::new(),
        }
        .with_regions();
        Ok((corpus, summary))
    }
}

/// `0-3, 7, 9-10`: a sorted list of task ids, runs collapsed.
pub fn ranges(ids: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        out.push(if j == i {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "no tasks".into()
    } else {
        out.join(", ")
    }
}

/// Compress markers as stored, counted over all streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Markers {
    /// `1` (`<c>`: a region's first transition).
    pub starts: usize,
    /// `2` (`</c>`: a region's last transition).
    pub ends: usize,
}

pub fn count_markers(markers: &[u8]) -> Markers {
    let count = |m: u8| markers.iter().filter(|&&v| v == m).count();
    Markers {
        starts: count(marker::START),
        ends: count(marker::END),
    }
}

/// One region of one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionReturn {
    /// Index within its stream.
    pub k: usize,
    /// Steps `[start, end)` within the stream.
    pub start: usize,
    pub end: usize,
    /// Ends with an end marker (false: the last region, cut short by the end of collection).
    pub closed: bool,
    /// Sum of the region's rewards.
    pub sum: f64,
    /// Episodes the region spans: its length / the horizon (every family's episodes last
    /// exactly `horizon` steps; fractional where a region is not whole episodes).
    pub episodes: f64,
}

impl RegionReturn {
    /// The region's return per episode.
    pub fn episode_return(&self) -> f64 {
        self.sum / self.episodes
    }
}

/// Every stream's regions (the corpus holds one task: history `s` is stream `s`).
pub fn region_returns(corpus: &Corpus, horizon: usize) -> Vec<Vec<RegionReturn>> {
    let h = &corpus.histories;
    (0..h.n_histories())
        .map(|hist| {
            let first = h.offsets[hist];
            corpus.regions.regions()[corpus.regions.history_regions(hist)]
                .iter()
                .map(|r| RegionReturn {
                    k: r.k as usize,
                    start: r.start - first,
                    end: r.end - first,
                    closed: r.closed,
                    sum: h.rewards[r.start..r.end].iter().map(|&x| x as f64).sum(),
                    episodes: r.len() as f64 / horizon as f64,
                })
                .collect()
        })
        .collect()
}

/// Mean and population standard deviation (the spread of the values themselves, not an
/// error of the mean) of `n` values; NaN for none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    Spread {
        n,
        mean,
        std: var.sqrt(),
    }
}

/// Region `k` over all streams that have it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionSpread {
    pub k: usize,
    /// Mean first step and end (exclusive) over the streams (collect gives every stream the
    /// same markers).
    pub start: f64,
    pub end: f64,
    /// Some stream's region `k` is cut short.
    pub cut_short: bool,
    /// Episode return (region return / episodes) over the streams.
    pub episode_return: Spread,
}

pub fn per_region(streams: &[Vec<RegionReturn>]) -> Vec<RegionSpread> {
    let n_regions = streams.iter().map(Vec::len).max().unwrap_or(0);
    (0..n_regions)
        .map(|k| {
            let rs: Vec<&RegionReturn> = streams.iter().filter_map(|s| s.get(k)).collect();
            let mean = |f: &dyn Fn(&RegionReturn) -> f64| {
                rs.iter().map(|r| f(r)).sum::<f64>() / rs.len() as f64
            };
            let returns: Vec<f64> = rs.iter().map(|r| r.episode_return()).collect();
            RegionSpread {
                k,
                start: mean(&|r| r.start as f64),
                end: mean(&|r| r.end as f64),
                cut_short: rs.iter().any(|r| !r.closed),
                episode_return: spread(&returns),
            }
        })
        .collect()
}

/// `value / optimal`, or `None` where the optimum is not positive (a Key-to-Door task whose
/// key lies beyond the horizon).
pub fn fraction(value: f64, optimal: f64) -> Option<f64> {
    (optimal > 0.0).then(|| value / optimal)
}

/// One task, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    pub task: usize,
    pub param_name: String,
    pub params: Vec<i32>,
    /// The task group's `optimal_return` (per episode).
    pub optimal: f64,
    /// `T`: steps a stream.
    pub steps: usize,
    pub n_stream: usize,
    pub markers: Markers,
    /// Per stream, its regions.
    pub streams: Vec<Vec<RegionReturn>>,
    /// Per region, over the streams.
    pub regions: Vec<RegionSpread>,
}

impl TaskSummary {
    fn with_regions(mut self) -> Self {
        self.regions = per_region(&self.streams);
        self
    }

    /// Per stream `(closed regions, cut-short regions)`.
    pub fn region_counts(&self) -> Vec<(usize, usize)> {
        self.streams
            .iter()
            .map(|s| {
                let closed = s.iter().filter(|r| r.closed).count();
                (closed, s.len() - closed)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[]), "no tasks");
    }

    #[test]
    fn spread_is_mean_and_population_std() {
        let s = spread(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!((s.n, s.mean, s.std), (8, 5.0, 2.0));
        assert!(spread(&[]).mean.is_nan());
    }

    #[test]
    fn fixture_markers_and_region_returns_are_the_hand_computed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.hdf5");
        fixture::write(&path);
        let file = File::open(&path).unwrap();
        assert_eq!(file.tasks(), vec![0, 4]);
        assert_eq!(file.default_task(), Some(4));
        let (_, s) = file.load_task(4).unwrap();
        assert_eq!(
            (s.param_name.as_str(), &s.params[..]),
            ("goal", &[1, 1][..])
        );
        // Goal = start: staying there 4 steps pays 4.
        assert_eq!(s.optimal, 4.0);
        assert_eq!((s.steps, s.n_stream), (20, 3));
        // Starts at steps 0, 8, 16 and ends at 7, 15 in each of 3 streams.
        assert_eq!(s.markers, Markers { starts: 9, ends: 6 });
        assert_eq!(s.region_counts(), vec![(2, 1); 3]);
        // Episode returns: G = 4, H = 2, B = 0; regions of 2, 2 and 1 episodes.
        let sums: Vec<Vec<f64>> = s
            .streams
            .iter()
            .map(|rs| rs.iter().map(|r| r.sum).collect())
            .collect();
        assert_eq!(
            sums,
            vec![
                vec![8.0, 8.0, 4.0], // G G | G G | G
                vec![0.0, 4.0, 4.0], // B B | H H | G
                vec![2.0, 4.0, 0.0], // B H | G B | B
            ]
        );
        let r = &s.streams[1];
        assert_eq!((r[1].start, r[1].end, r[1].closed), (8, 16, true));
        assert_eq!((r[2].start, r[2].end, r[2].closed), (16, 20, false));
        let per_episode: Vec<Vec<f64>> = s
            .streams
            .iter()
            .map(|rs| rs.iter().map(|r| r.episode_return()).collect())
            .collect();
        assert_eq!(
            per_episode,
            vec![
                vec![4.0, 4.0, 4.0],
                vec![0.0, 2.0, 4.0],
                vec![1.0, 2.0, 0.0]
            ]
        );
        // Over streams: {4, 0, 1}, {4, 2, 2}, {4, 4, 0}.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let want = [
            (5.0 / 3.0, 26f64.sqrt() / 3.0),
            (8.0 / 3.0, 8f64.sqrt() / 3.0),
            (8.0 / 3.0, 32f64.sqrt() / 3.0),
        ];
        assert_eq!(s.regions.len(), 3);
        for (r, (mean, std)) in s.regions.iter().zip(want) {
            assert_eq!(r.episode_return.n, 3);
            assert!(close(r.episode_return.mean, mean), "{r:?}");
            assert!(close(r.episode_return.std, std), "{r:?}");
        }
        assert_eq!(
            (s.regions[2].start, s.regions[2].end, s.regions[2].cut_short),
            (16.0, 20.0, true)
        );
        assert!(!s.regions[0].cut_short);
        assert_eq!(
            fraction(s.regions[0].episode_return.mean, s.optimal),
            Some(5.0 / 12.0)
        );
        assert_eq!(fraction(1.0, 0.0), None);

        // Task 0's goal (0, 0) is never reached: no reward anywhere.
        let (_, s0) = file.load_task(0).unwrap();
        assert!(s0.streams.iter().flatten().all(|r| r.sum == 0.0));
    }

    #[test]
    fn a_task_the_file_does_not_hold_is_an_error_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.hdf5");
        fixture::write(&path);
        let file = File::open(&path).unwrap();
        let e = file.load_task(3).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{}: --task: 3 is not a task of this file (it holds 0, 4)",
                path.display()
            )
        );
    }
}
