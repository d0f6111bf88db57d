use super::*;
use crate::backend::Stage;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "configs/x.toml", &[])
}

#[test]
fn empty_file_gives_defaults_and_resolves_interval() {
    let c = parse("").unwrap();
    assert_eq!(c.compress_interval(), 80);
    assert_eq!(c.collect.dataset, "darkroom");
    assert_eq!(c.train.run, "darkroom");
    assert_eq!(c.model.d_model, 64);
}

#[test]
fn unknown_key_names_section_and_key() {
    let e = parse("[train]\nbatch_sise = 3\n").unwrap_err().to_string();
    assert!(e.starts_with("configs/x.toml: train"), "{e}");
    assert!(e.contains("batch_sise"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn unknown_section_is_refused() {
    let e = parse("[trian]\nsteps = 3\n").unwrap_err().to_string();
    assert!(e.contains("trian"), "{e}");
}

#[test]
fn bad_value_names_field() {
    let e = parse("[train]\nbatch_size = 0\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "configs/x.toml: train.batch_size: must be in [1, 1000000], got 0"
    );
    let e = parse("[model]\nd_model = 64\nn_heads = 5\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("configs/x.toml: model.n_heads: must divide"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_field() {
    let e = parse("[ppo]\nlr = \"fast\"\n").unwrap_err().to_string();
    assert!(e.starts_with("configs/x.toml: ppo.lr:"), "{e}");
    let e = parse("[dataset]\ncontext = \"spiral\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configs/x.toml: dataset.context:"), "{e}");
}

#[test]
fn malformed_toml_names_line() {
    let e = parse("[train]\nsteps = = 3\n").unwrap_err().to_string();
    assert!(e.starts_with("configs/x.toml: line 2: invalid TOML"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let e = Config::load(Path::new("configs/nope.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configs/nope.toml: cannot read"), "{e}");
}

#[test]
fn overrides_apply_and_are_validated() {
    let c = Config::from_toml_str(
        "[train]\nsteps = 5\n",
        "f.toml",
        &[
            "train.steps=7".into(),
            "dataset.context=window".into(),
            "train.run=abc".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.train.steps, 7);
    assert_eq!(c.dataset.context, ContextMode::Window);
    assert_eq!(variant_name(&ContextMode::Window), "window");
    assert_eq!(variant_name(&Objective::Dense), "dense");
    assert_eq!(c.train.run, "abc");
    let e = Config::from_toml_str("", "f.toml", &["train.steps=0".into()])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "f.toml: train.steps: must be in [1, 1000000000], got 0");
    let e = Config::from_toml_str("", "f.toml", &["trainsteps".into()])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--set: trainsteps"), "{e}");
}

#[test]
fn train_engine_defaults_to_auto_and_names_bad_values() {
    assert_eq!(parse("").unwrap().train.engine, Engine::Auto);
    let c = parse("[train]\nengine = \"burn\"\n").unwrap();
    assert_eq!(c.train.engine, Engine::Burn);
    assert_eq!(Engine::Native.resolve(Stage::Train), Engine::Native);
    let e = parse("[train]\nengine = \"fast\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configs/x.toml: train.engine:"), "{e}");
}

#[test]
fn round_trips_through_toml() {
    let c = parse("[eval]\ngreedy = true\n").unwrap();
    let again = parse(&c.to_toml_string()).unwrap();
    assert_eq!(c, again);
}

#[test]
fn shipped_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            Config::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2, "expected darkroom.toml and quick.toml");
}

#[test]
fn split_fields_are_checked() {
    let c = parse("[env]\ntest_tasks = [[4, 2], [5, 6]]\n").unwrap();
    assert_eq!(c.env.test_tasks, vec![vec![4, 2], vec![5, 6]]);
    let e = parse("[env]\ntest_tasks = [[4, 2], [4, 2]]\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "configs/x.toml: env.test_tasks: [4, 2] is listed twice");
    let e = parse("[env]\nn_train_tasks = 10\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "configs/x.toml: env.n_train_tasks: n_train_tasks and n_test_tasks go together"
        ),
        "{e}"
    );
    assert!(parse("[env]\nn_train_tasks = 10\nn_test_tasks = 2\n").is_ok());
}

#[test]
fn run_names_are_plain_paths_inside_runs() {
    let ok = parse("[train]\nrun = \"experiment-x/cells/window/seed-1\"\n").unwrap();
    assert_eq!(
        ok.run_dir(),
        Path::new("runs/experiment-x/cells/window/seed-1")
    );
    for bad in ["..", "a/../b", "a//b", "/abs", "a b", "."] {
        let e = parse(&format!("[train]\nrun = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("configs/x.toml: train.run: must be a plain name"),
            "{bad}: {e}"
        );
    }
    let e = parse("[collect]\ndataset = \"..\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configs/x.toml: collect.dataset:"), "{e}");
}

#[test]
fn huge_sizes_are_one_line_errors() {
    for (ov, field) in [
        ("env.horizon=2147483647", "env.horizon"),
        ("env.grid=100000", "env.grid"),
        ("train.batch_size=100000000000", "train.batch_size"),
        ("model.d_model=1000000", "model.d_model"),
        ("model.n_layers=100000", "model.n_layers"),
        ("ppo.n_streams=10000000000", "ppo.n_streams"),
        ("ppo.n_steps=10000000000", "ppo.n_steps"),
        ("dataset.n_transit=100000000000", "dataset.n_transit"),
        (
            "collect.compress_interval=100000000000",
            "collect.compress_interval",
        ),
        ("eval.episodes=100000000000", "eval.episodes"),
    ] {
        let e = Config::from_toml_str("", "configs/x.toml", &[ov.into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("configs/x.toml: {field}: must be in [")),
            "{ov}: {e}"
        );
        assert!(!e.contains('\n'));
    }
}

#[test]
fn memory_section_defaults_and_refusals() {
    let c = parse("[dataset]\ncontext = \"memory\"\n[model]\nobjective = \"dense\"\n").unwrap();
    assert_eq!(c.memory.tokens, 4);
    assert_eq!(c.memory.update, crate::context::MemoryUpdate::Merge);
    assert_eq!(c.memory.keep, Keep::None);
    assert_eq!((c.memory.keep_max, c.memory.train_regions), (16, 0));
    let one_line = |text: &str, want: &str| {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
        assert!(!e.contains('\n'), "{e}");
    };
    one_line(
        "[dataset]\ncontext = \"memory\"\n[model]\nobjective = \"query\"\n",
        "configs/x.toml: model.objective: dataset.context = \"memory\" trains the dense",
    );
    one_line(
        "[dataset]\ncontext = \"memory\"\n[model]\nobjective = \"dense\"\n[eval]\nboundary = \"predicted\"\n",
        "configs/x.toml: eval.boundary: dataset.context = \"memory\" closes regions",
    );
    one_line(
        "[memory]\ntokens = 0\n",
        "configs/x.toml: memory.tokens: must be in [1, 1024]",
    );
    one_line(
        "[memory]\nupdate = \"sum\"\n",
        "configs/x.toml: memory.update:",
    );
    one_line("[memory]\nkeep = \"all\"\n", "configs/x.toml: memory.keep:");
    one_line(
        "[memory]\nkeep_max = 0\n",
        "configs/x.toml: memory.keep_max:",
    );
    one_line("[memory]\nslots = 3\n", "configs/x.toml: memory");
    let memory = "[dataset]\ncontext = \"memory\"\n[model]\nobjective = \"dense\"\n";
    let keep = parse(&format!("{memory}[memory]\nkeep = \"rewarded\"\n")).unwrap();
    assert_eq!(keep.memory.keep, Keep::Rewarded);
    let chunked = parse(&format!("{memory}[memory]\ntrain_regions = 2\n")).unwrap();
    assert_eq!(chunked.memory.train_regions, 2);
    one_line(
        &format!("{memory}[memory]\ntrain_regions = 2\nkeep = \"rewarded\"\n"),
        "configs/x.toml: memory.train_regions: keep = \"rewarded\" trains every region as its own sequence already; use 0",
    );
    one_line(
        "[memory]\ntrain_regions = 100000000000\n",
        "configs/x.toml: memory.train_regions: must be at most",
    );
}

#[test]
fn new_environments_parse_and_name_their_dataset() {
    let c = parse("[env]\nname = \"key-to-door\"\nhorizon = 50\n").unwrap();
    assert_eq!(c.env.name, EnvName::KeyToDoor);
    assert_eq!(c.collect.dataset, "key-to-door");
    assert_eq!(EnvName::KeyToDoor.task_count(9), 6480); // 81 keys × 80 doors
    let c = parse("[env]\nname = \"darkroom-hard\"\ngrid = 17\n").unwrap();
    assert_eq!(c.env.name, EnvName::DarkroomHard);
    assert_eq!(c.collect.dataset, "darkroom-hard");
    assert_eq!(EnvName::DarkroomHard.task_count(17), 289);
    assert_eq!(variant_name(&EnvName::KeyToDoor), "key-to-door");
    assert_eq!(variant_name(&EnvName::DarkroomHard), "darkroom-hard");
    let e = parse("[env]\nname = \"key-door\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("configs/x.toml: env.name:"), "{e}");
}

#[test]
fn horizon_must_allow_every_task_its_optimum() {
    let one_line = |text: &str, want: &str| {
        let e = parse(text).unwrap_err().to_string();
        assert_eq!(e, want);
    };
    // 9 × 9 from (4,4): key (0,0) is 8 steps away, door (8,8) 16 more: 24.
    one_line(
        "[env]\nname = \"key-to-door\"\nhorizon = 23\n",
        "configs/x.toml: env.horizon: must be at least 24 so that every key-to-door task on a \
         9-sided grid can earn its optimum (the farthest: start, key in a far corner, door in \
         the opposite one), got 23",
    );
    assert!(parse("[env]\nname = \"key-to-door\"\nhorizon = 24\n").is_ok());
    // 17 × 17 from (8,8): the corner (0,0) is 16 steps away.
    one_line(
        "[env]\nname = \"darkroom-hard\"\ngrid = 17\nhorizon = 15\n",
        "configs/x.toml: env.horizon: must be at least 16 so that every darkroom-hard task on \
         a 17-sided grid can earn its optimum (the farthest: start to the farthest corner), \
         got 15",
    );
    assert!(parse("[env]\nname = \"darkroom-hard\"\ngrid = 17\nhorizon = 16\n").is_ok());
    // Dark Room pays every step: a short horizon only lowers far goals' optimum.
    assert!(parse("[env]\nhorizon = 5\n").is_ok());
}

#[test]
fn key_to_door_bad_parameters_are_one_line_errors() {
    let e = parse("[env]\nname = \"key-to-door\"\ngrid = 1\nhorizon = 50\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "configs/x.toml: env.grid: must be in [2, 1000], got 1");
    // 2 × 2: 4 keys × 3 doors = 12 tasks.
    let e = parse("[env]\nname = \"key-to-door\"\ngrid = 2\nhorizon = 4\nn_tasks = 13\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "configs/x.toml: env.n_tasks: key-to-door has only 12 tasks, got 13"
    );
    // 60 × 60: 3,600 · 3,599 = 12,956,400 tasks, over the 10,000,000 a split shuffles.
    let big = "[env]\nname = \"key-to-door\"\ngrid = 60\nhorizon = 200\n";
    let e = parse(big).unwrap_err().to_string();
    assert_eq!(
        e,
        "configs/x.toml: env.n_tasks: 12956400 tasks in use (key-to-door on a 60-sided grid \
         has 12956400), at most 10000000: set env.n_tasks or a smaller env.grid"
    );
    assert!(parse(&format!("{big}n_tasks = 100000\n")).is_ok());
    let e = parse(
        "[env]\nname = \"key-to-door\"\nhorizon = 50\nn_train_tasks = 6000\nn_test_tasks = 0\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("configs/x.toml: env.n_train_tasks: n_train_tasks and n_test_tasks go"),
        "{e}"
    );
    for text in [
        "[env]\nname = \"key-to-door\"\nhorizon = 23\n",
        "[env]\nname = \"key-to-door\"\ngrid = 60\nhorizon = 200\n",
    ] {
        assert!(!parse(text).unwrap_err().to_string().contains('\n'));
    }
}
