import pytest

from raydata_agent.config import ConfigError, load_config


def test_defaults_are_the_embedded_run():
    cfg = load_config()
    assert (cfg.data.name, cfg.selection.selector, cfg.selection.ratio) == ("shapes", "infobatch", 0.5)
    assert cfg.tracking_uri.startswith("sqlite:///") and cfg.tracking_uri.endswith("mlflow.db")


def test_overrides_parse_yaml_scalars(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("selection:\n  selector: greedy\ntrain:\n  epochs: 3\n")
    cfg = load_config(path, ["selection.ratio=0.3", "train.use_gpu=true", "tracking.run_name=abc",
                             "train.lr=1e-3"])
    assert cfg.train.lr == 0.001
    assert cfg.selection.selector == "greedy" and cfg.selection.ratio == 0.3
    assert cfg.train.epochs == 3 and cfg.train.use_gpu is True and cfg.tracking.run_name == "abc"


@pytest.mark.parametrize("override,message", [
    (["selection.ratio=1.5"], "selection.ratio=1.5 is out of range; allowed: (0.0, 1.0]"),
    (["selection.ratio=0"], "selection.ratio=0.0 is out of range"),
    (["train.epochs=0"], "train.epochs=0 must be at least 1"),
    (["selection.selector=magic"], "selection.selector='magic' is not allowed; choose one of:"),
    (["selection.colour=red"], "unknown config key selection.colour; allowed keys of selection:"),
    (["optim.lr=1"], "unknown config section 'optim'"),
    (["train.epochs=many"], "train.epochs='many' has the wrong type; expected int"),
    (["data.name=cifar10"], "data.path is required for data.name=cifar10"),
    (["data.name=imagefolder", "data.path=/no/such/dir"], "data.path='/no/such/dir' is not a directory"),
    (["reward.variant=loudest"], "reward.variant='loudest' is not allowed"),
    (["selection.ratoi=0.3"], "unknown config key selection.ratoi (did you mean `selection.ratio`?)"),
    (["selction.ratio=0.3"], "unknown config section 'selction' (did you mean `selection`?)"),
    (["selection.lr=0.1"], "unknown config key selection.lr (did you mean `agent.lr`?)"),
    (["selection.selector=gredy"], "selection.selector='gredy' is not allowed (did you mean `greedy`?)"),
    (["reward.variant=adaptiv"], "(did you mean `adaptive`?)"),
    (["tracking.snapshot_columns=some"], "tracking.snapshot_columns='some' is not allowed"),
    (["train.max_failures=-1"], "train.max_failures=-1 must be >= 0"),
    (["agent.learner=regression", "agent.payoff=margin"], "agent.learner=regression fits the rank payoff"),
    (["agent.gamma=0.9"], "agent.baseline=self_critical needs agent.gamma=0 (got 0.9)"),
    (["ratio=0.5"], "must be section.key"),
    (["selection.ratio"], "must look like section.key=value"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, override)
    assert message in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("selection: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("text,message", [
    ("train: 0\n", "config section 'train' must be a mapping of its keys, got int 0"),
    ("train: false\n", "config section 'train' must be a mapping of its keys, got bool False"),
    ("task: 5\n", "config section 'task' must be a mapping of its keys, got int 5"),
    ("selection: [1, 2]\n", "config section 'selection' must be a mapping of its keys, got list"),
    ("- 1\n- 2\n", "must hold a mapping of sections (task, data, selection, ...), got list"),
    ("0\n", "must hold a mapping of sections (task, data, selection, ...), got int"),
    ("ratio: 0.5\n", "unknown config section 'ratio' (did you mean `selection.ratio`?)"),
    ("selection:\n  ratoi: 0.5\n", "unknown config key selection.ratoi (did you mean `selection.ratio`?)"),
])
def test_malformed_sections_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_empty_section_and_empty_file_are_the_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n")
    assert load_config(path).train.epochs == 8
    path.write_text("")
    assert load_config(path).selection.selector == "infobatch"


def test_job_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "jobs" / "configs").glob("*.yaml"))
    assert configs, "jobs/configs holds the example job configs"
    for path in configs:
        if "cifar" in path.name or "imagefolder" in path.name:
            continue  # they need a data set on disk
        if path.name.startswith("sweep"):
            from raydata_agent.sweep import load_sweep

            load_sweep(str(path), [])  # validates every trial's config
            continue
        load_config(path)
