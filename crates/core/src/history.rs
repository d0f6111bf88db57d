//! The learning-history file (DESIGN §4): one definition of names, dtypes and attributes,
//! used by collect's writer and dataset's reader.
//!
//! `datasets/<name>.hdf5`: one group per task, named by task id (`"0"`, `"1"`, …), each holding
//! time-major arrays `[T, n_stream, …]`. Root attributes record the format version, the
//! environment, the full config, the compress interval and the train/test split.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;

use crate::atomic::TempPath;
use crate::error::{Error, Result};

/// Bumped whenever names, dtypes or meanings change.
pub const FORMAT_VERSION: u32 = 1;

/// Dataset names inside a task group.
pub mod names {
    pub const STATES: &str = "states";
    pub const NEXT_STATES: &str = "next_states";
    pub const ACTIONS: &str = "actions";
    pub const REWARDS: &str = "rewards";
    pub const DONES: &str = "dones";
    pub const COMPRESS_MARKERS: &str = "compress_markers";
}

/// Attribute names.
pub mod attrs {
    pub const FORMAT_VERSION: &str = "format_version";
    pub const ENV_NAME: &str = "env_name";
    pub const ENV_PARAMS: &str = "env_params";
    pub const CONFIG: &str = "config";
    pub const COMPRESS_INTERVAL: &str = "compress_interval";
    pub const TRAIN_TASKS: &str = "train_tasks";
    pub const TEST_TASKS: &str = "test_tasks";
    pub const N_ACTIONS: &str = "n_actions";
    /// On each task group.
    pub const TASK: &str = "task";
    pub const OPTIMAL_RETURN: &str = "optimal_return";
}

/// Root-level description of a history file.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryMeta {
    pub format_version: u32,
    pub env_name: String,
    /// JSON object of the environment family's parameters (grid, horizon).
    pub env_params: String,
    /// The full config that produced the file, as TOML.
    pub config: String,
    pub compress_interval: usize,
    pub n_actions: usize,
    pub train_tasks: Vec<usize>,
    pub test_tasks: Vec<usize>,
}

impl HistoryMeta {
    /// The description of a file collected with `cfg` on `env`, with the given task split.
    pub fn for_config(
        cfg: &crate::Config,
        env: &dyn crate::env::Environment,
        train_tasks: Vec<usize>,
        test_tasks: Vec<usize>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            env_name: env.name().to_string(),
            env_params: env.params_json(),
            config: cfg.to_toml_string(),
            compress_interval: cfg.compress_interval(),
            n_actions: env.n_actions(),
            train_tasks,
            test_tasks,
        }
    }
}

/// One task's learning histories: `n_stream` streams of `steps` transitions, time-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskHistory {
    pub task: usize,
    /// Name and value of what defines the task (e.g. "goal", [row, col]).
    pub param_name: String,
    pub params: Vec<i32>,
    pub optimal_return: f32,
    pub steps: usize,
    pub n_stream: usize,
    pub obs_dim: usize,
    /// `[steps, n_stream, obs_dim]`
    pub states: Vec<i32>,
    /// `[steps, n_stream, obs_dim]`
    pub next_states: Vec<i32>,
    /// `[steps, n_stream]`
    pub actions: Vec<i32>,
    pub rewards: Vec<f32>,
    pub dones: Vec<u8>,
    pub compress_markers: Vec<u8>,
}

fn h5err(path: &Path, field: &str, e: hdf5::Error) -> Error {
    Error::file(path, field, e.to_string().replace('\n', " "))
}

fn vlu(s: &str) -> VarLenUnicode {
    s.parse().expect("UTF-8 text without NUL")
}

/// Writes a history file under a temporary name; [`HistoryWriter::finish`] renames it into
/// place. Dropped unfinished, it removes the temporary file.
pub struct HistoryWriter {
    file: Option<hdf5::File>,
    tmp: TempPath,
    dest: PathBuf,
}

impl HistoryWriter {
    pub fn create(dest: &Path, meta: &HistoryMeta) -> Result<Self> {
        let tmp = TempPath::beside(dest)?;
        let file = hdf5::File::create(tmp.path()).map_err(|e| h5err(dest, "create", e))?;
        let w = |field: &str, e| h5err(dest, field, e);
        file.new_attr::<u32>()
            .create(attrs::FORMAT_VERSION)
            .and_then(|a| a.write_scalar(&meta.format_version))
            .map_err(|e| w(attrs::FORMAT_VERSION, e))?;
        for (name, text) in [
            (attrs::ENV_NAME, &meta.env_name),
            (attrs::ENV_PARAMS, &meta.env_params),
            (attrs::CONFIG, &meta.config),
        ] {
            file.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(&vlu(text)))
                .map_err(|e| w(name, e))?;
        }
        for (name, v) in [
            (attrs::COMPRESS_INTERVAL, meta.compress_interval),
            (attrs::N_ACTIONS, meta.n_actions),
        ] {
            file.new_attr::<u32>()
                .create(name)
                .and_then(|a| a.write_scalar(&(v as u32)))
                .map_err(|e| w(name, e))?;
        }
        for (name, list) in [
            (attrs::TRAIN_TASKS, &meta.train_tasks),
            (attrs::TEST_TASKS, &meta.test_tasks),
        ] {
            let v: Vec<i32> = list.iter().map(|&t| t as i32).collect();
            file.new_attr_builder()
                .with_data(&v)
                .create(name)
                .map_err(|e| w(name, e))?;
        }
        Ok(Self {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Add one task's group.
    pub fn write_task(&mut self, h: &TaskHistory) -> Result<()> {
        let dest = self.dest.clone();
        let file = self.file.as_ref().expect("writer open");
        let field = |name: &str| format!("{}/{}", h.task, name);
        let g = file
            .create_group(&h.task.to_string())
            .map_err(|e| h5err(&dest, &h.task.to_string(), e))?;
        let (t, s, d) = (h.steps, h.n_stream, h.obs_dim);
        assert_eq!(h.states.len(), t * s * d, "states shape");
        assert_eq!(h.next_states.len(), t * s * d, "next_states shape");
        for v in [h.actions.len(), h.rewards.len(), h.dones.len()] {
            assert_eq!(v, t * s, "per-step array shape");
        }
        assert_eq!(h.compress_markers.len(), t * s, "markers shape");
        // Chunks of whole time slices keep per-stream reads cheap; deflate needs the zlib filter.
        let chunk_t = t.clamp(1, 1024);
        macro_rules! put {
            ($name:expr, $ty:ty, $data:expr, $shape:expr, $chunk:expr) => {{
                let arr = ndarray::ArrayView::from_shape($shape, $data).expect("shape checked");
                let mut b = g.new_dataset_builder();
                if hdf5::filters::deflate_available() {
                    b = b.deflate(4);
                }
                b.chunk($chunk)
                    .with_data(&arr)
                    .create($name)
                    .map_err(|e| h5err(&dest, &field($name), e))?;
            }};
        }
        put!(
            names::STATES,
            i32,
            &h.states[..],
            (t, s, d),
            (chunk_t, s, d)
        );
        put!(
            names::NEXT_STATES,
            i32,
            &h.next_states[..],
            (t, s, d),
            (chunk_t, s, d)
        );
        put!(names::ACTIONS, i32, &h.actions[..], (t, s), (chunk_t, s));
        put!(names::REWARDS, f32, &h.rewards[..], (t, s), (chunk_t, s));
        put!(names::DONES, u8, &h.dones[..], (t, s), (chunk_t, s));
        put!(
            names::COMPRESS_MARKERS,
            u8,
            &h.compress_markers[..],
            (t, s),
            (chunk_t, s)
        );
        g.new_attr::<u32>()
            .create(attrs::TASK)
            .and_then(|a| a.write_scalar(&(h.task as u32)))
            .map_err(|e| h5err(&dest, &field(attrs::TASK), e))?;
        g.new_attr_builder()
            .with_data(&h.params)
            .create(h.param_name.as_str())
            .map_err(|e| h5err(&dest, &field(&h.param_name), e))?;
        g.new_attr::<f32>()
            .create(attrs::OPTIMAL_RETURN)
            .and_then(|a| a.write_scalar(&h.optimal_return))
            .map_err(|e| h5err(&dest, &field(attrs::OPTIMAL_RETURN), e))?;
        Ok(())
    }

    /// Close the file and move it to its final name.
    pub fn finish(mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.flush().map_err(|e| h5err(&self.dest, "flush", e))?;
            drop(f);
        }
        let HistoryWriter { tmp, .. } = self;
        tmp.commit()
    }
}

/// Reads a history file, checking names, dtypes and shapes.
pub struct HistoryReader {
    file: hdf5::File,
    path: PathBuf,
    pub meta: HistoryMeta,
}

impl HistoryReader {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::file(
                path,
                "file",
                "does not exist (run collect first)",
            ));
        }
        let file = hdf5::File::open(path).map_err(|e| h5err(path, "file", e))?;
        let str_attr = |name: &str| -> Result<String> {
            file.attr(name)
                .and_then(|a| a.read_scalar::<VarLenUnicode>())
                .map(|v| v.as_str().to_string())
                .map_err(|e| h5err(path, name, e))
        };
        let u32_attr = |name: &str| -> Result<u32> {
            file.attr(name)
                .and_then(|a| a.read_scalar::<u32>())
                .map_err(|e| h5err(path, name, e))
        };
        let list_attr = |name: &str| -> Result<Vec<usize>> {
            let v = file
                .attr(name)
                .and_then(|a| a.read_raw::<i32>())
                .map_err(|e| h5err(path, name, e))?;
            v.into_iter()
                .map(|t| {
                    usize::try_from(t).map_err(|_| Error::file(path, name, "negative task id"))
                })
                .collect()
        };
        let format_version = u32_attr(attrs::FORMAT_VERSION)?;
        if format_version != FORMAT_VERSION {
            return Err(Error::file(
                path,
                attrs::FORMAT_VERSION,
                format!("is {format_version}, this build reads {FORMAT_VERSION}"),
            ));
        }
        let meta = HistoryMeta {
            format_version,
            env_name: str_attr(attrs::ENV_NAME)?,
            env_params: str_attr(attrs::ENV_PARAMS)?,
            config: str_attr(attrs::CONFIG)?,
            compress_interval: u32_attr(attrs::COMPRESS_INTERVAL)? as usize,
            n_actions: u32_attr(attrs::N_ACTIONS)? as usize,
            train_tasks: list_attr(attrs::TRAIN_TASKS)?,
            test_tasks: list_attr(attrs::TEST_TASKS)?,
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            meta,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Task ids present as groups, ascending.
    pub fn tasks(&self) -> Result<Vec<usize>> {
        let names = self
            .file
            .member_names()
            .map_err(|e| h5err(&self.path, "groups", e))?;
        let mut ids: Vec<usize> = names.iter().filter_map(|n| n.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Read one task's group; `param_name` is the environment's task-parameter attribute.
    pub fn read_task(&self, task: usize, param_name: &str) -> Result<TaskHistory> {
        let p = &self.path;
        let gname = task.to_string();
        let g = self.file.group(&gname).map_err(|e| h5err(p, &gname, e))?;
        let field = |name: &str| format!("{gname}/{name}");
        let ds = |name: &str| g.dataset(name).map_err(|e| h5err(p, &field(name), e));
        let states_ds = ds(names::STATES)?;
        let shape = states_ds.shape();
        if shape.len() != 3 {
            return Err(Error::file(
                p,
                field(names::STATES),
                format!("expected shape [T, n_stream, obs_dim], got {shape:?}"),
            ));
        }
        let (steps, n_stream, obs_dim) = (shape[0], shape[1], shape[2]);
        macro_rules! get {
            ($name:expr, $ty:ty, $shape:expr) => {{
                let d = ds($name)?;
                let want: Vec<usize> = $shape;
                if d.shape() != want {
                    return Err(Error::file(
                        p,
                        field($name),
                        format!("expected shape {want:?}, got {:?}", d.shape()),
                    ));
                }
                let dtype = d.dtype().map_err(|e| h5err(p, &field($name), e))?;
                let expected =
                    hdf5::Datatype::from_type::<$ty>().map_err(|e| h5err(p, &field($name), e))?;
                if dtype != expected {
                    return Err(Error::file(
                        p,
                        field($name),
                        format!("expected dtype {}", stringify!($ty)),
                    ));
                }
                d.read_raw::<$ty>()
                    .map_err(|e| h5err(p, &field($name), e))?
            }};
        }
        let states = get!(names::STATES, i32, vec![steps, n_stream, obs_dim]);
        let next_states = get!(names::NEXT_STATES, i32, vec![steps, n_stream, obs_dim]);
        let actions = get!(names::ACTIONS, i32, vec![steps, n_stream]);
        let rewards = get!(names::REWARDS, f32, vec![steps, n_stream]);
        let dones = get!(names::DONES, u8, vec![steps, n_stream]);
        let compress_markers = get!(names::COMPRESS_MARKERS, u8, vec![steps, n_stream]);
        let params = g
            .attr(param_name)
            .and_then(|a| a.read_raw::<i32>())
            .map_err(|e| h5err(p, &field(param_name), e))?;
        let optimal_return = g
            .attr(attrs::OPTIMAL_RETURN)
            .and_then(|a| a.read_scalar::<f32>())
            .map_err(|e| h5err(p, &field(attrs::OPTIMAL_RETURN), e))?;
        Ok(TaskHistory {
            task,
            param_name: param_name.to_string(),
            params,
            optimal_return,
            steps,
            n_stream,
            obs_dim,
            states,
            next_states,
            actions,
            rewards,
            dones,
            compress_markers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::marker_at;

    pub(crate) fn sample_meta() -> HistoryMeta {
        HistoryMeta {
            format_version: FORMAT_VERSION,
            env_name: "darkroom".into(),
            env_params: r#"{"grid":9,"horizon":20}"#.into(),
            config: "[env]\n".into(),
            compress_interval: 3,
            n_actions: 5,
            train_tasks: vec![1, 0],
            test_tasks: vec![2],
        }
    }

    fn sample_task(task: usize) -> TaskHistory {
        let (t, s, d) = (7, 2, 2);
        TaskHistory {
            task,
            param_name: "goal".into(),
            params: vec![task as i32, 3],
            optimal_return: 13.0,
            steps: t,
            n_stream: s,
            obs_dim: d,
            states: (0..(t * s * d) as i32).collect(),
            next_states: (0..(t * s * d) as i32).map(|x| x + 1).collect(),
            actions: (0..(t * s) as i32).map(|x| x % 5).collect(),
            rewards: (0..t * s).map(|x| (x % 2) as f32).collect(),
            dones: (0..t * s).map(|x| (x % 3 == 0) as u8).collect(),
            compress_markers: (0..t * s).map(|x| marker_at(x / s, 3)).collect(),
        }
    }

    #[test]
    fn round_trip_with_names_and_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.hdf5");
        let mut w = HistoryWriter::create(&path, &sample_meta()).unwrap();
        assert!(!path.exists(), "nothing under the final name before finish");
        w.write_task(&sample_task(0)).unwrap();
        w.write_task(&sample_task(1)).unwrap();
        w.finish().unwrap();
        assert!(path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file renamed"
        );

        let r = HistoryReader::open(&path).unwrap();
        assert_eq!(r.meta, sample_meta());
        assert_eq!(r.tasks().unwrap(), vec![0, 1]);
        assert_eq!(r.read_task(1, "goal").unwrap(), sample_task(1));

        // The exact names and dtypes, checked through the raw HDF5 API.
        let f = hdf5::File::open(&path).unwrap();
        let g = f.group("0").unwrap();
        let mut names = g.member_names().unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![
                "actions",
                "compress_markers",
                "dones",
                "next_states",
                "rewards",
                "states"
            ]
        );
        let is = |n: &str, t: hdf5::Datatype| g.dataset(n).unwrap().dtype().unwrap() == t;
        assert!(is("states", hdf5::Datatype::from_type::<i32>().unwrap()));
        assert!(is("actions", hdf5::Datatype::from_type::<i32>().unwrap()));
        assert!(is("rewards", hdf5::Datatype::from_type::<f32>().unwrap()));
        assert!(is("dones", hdf5::Datatype::from_type::<u8>().unwrap()));
        assert!(is(
            "compress_markers",
            hdf5::Datatype::from_type::<u8>().unwrap()
        ));
        assert_eq!(g.dataset("states").unwrap().shape(), vec![7, 2, 2]);
        assert_eq!(g.dataset("compress_markers").unwrap().shape(), vec![7, 2]);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.hdf5");
        {
            let mut w = HistoryWriter::create(&path, &sample_meta()).unwrap();
            w.write_task(&sample_task(0)).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_and_corrupt_files_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.hdf5");
        let e = HistoryReader::open(&path).err().unwrap().to_string();
        assert!(e.contains("none.hdf5: file: does not exist"), "{e}");
        std::fs::write(&path, b"not an hdf5 file").unwrap();
        let e = HistoryReader::open(&path).err().unwrap().to_string();
        assert!(e.contains("none.hdf5: file:"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn wrong_dtype_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.hdf5");
        let mut w = HistoryWriter::create(&path, &sample_meta()).unwrap();
        w.write_task(&sample_task(0)).unwrap();
        w.finish().unwrap();
        {
            let f = hdf5::File::open_rw(&path).unwrap();
            let g = f.group("0").unwrap();
            g.unlink("actions").unwrap();
            let a = ndarray::Array2::<i64>::zeros((7, 2));
            g.new_dataset_builder()
                .with_data(&a)
                .create("actions")
                .unwrap();
        }
        let r = HistoryReader::open(&path).unwrap();
        let e = r.read_task(0, "goal").unwrap_err().to_string();
        assert!(e.contains("0/actions: expected dtype i32"), "{e}");
    }
}
