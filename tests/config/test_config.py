import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raydata_agent.config import SELECTOR_KNOBS, Config, ConfigError, from_dict, load_config

ROOT = Path(__file__).parents[2]


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

    configs = sorted((Path(__file__).parents[2] / "jobs" / "configs").glob("*.yaml"))
    assert configs, "jobs/configs holds the example job configs"
    for path in configs:
        if "cifar" in path.name or "imagefolder" in path.name:
            continue  # they need a data set on disk
        if path.name.startswith("sweep"):
            from raydata_agent.sweep import load_sweep

            load_sweep(str(path), [])  # validates every trial's config
            continue
        load_config(path)


def test_selector_knobs_are_nested_and_old_flat_keys_name_their_new_key(tmp_path):
    cfg = load_config(None, ["selection.selector=lead", "selection.lead.gamma=0.2"])
    assert (cfg.selection.lead.gamma, cfg.selection.lead.clusters) == (0.2, 7)
    assert cfg.flat()["selection.lead.gamma"] == 0.2 and "selection.lead.gamma" in cfg.run_params()
    assert "selection.ucb.c" not in cfg.run_params()  # another selector's knob, at its default
    path = tmp_path / "c.yaml"
    path.write_text("selection:\n  selector: eps_greedy\n  eps_greedy:\n    epsilon: 0.3\n")
    assert load_config(path).selection.eps_greedy.epsilon == 0.3
    for override, message in [
            ("selection.lead_gamma=0.2", "config key selection.lead_gamma is now selection.lead.gamma"),
            ("selection.ucb_c=2", "config key selection.ucb_c is now selection.ucb.c"),
            ("selection.epsilon=0.2", "config key selection.epsilon is now selection.eps_greedy.epsilon"),
            ("selection.eps_greedy.epsilon=2", "selection.eps_greedy.epsilon=2.0 is out of range; allowed: [0.0, 1.0]"),
            ("selection.lead.gama=0.1", "unknown config key selection.lead.gama (did you mean `selection.lead.gamma`?)"),
            ("selection.lead=3", "config section 'selection.lead' must be a mapping of its keys, got int 3"),
            ("train.checkpoints_to_keep=0", "train.checkpoints_to_keep=0 must be at least 1")]:
        with pytest.raises(ConfigError) as err:
            load_config(None, [override])
        assert message in str(err.value) and "\n" not in str(err.value), override


def test_config_round_trips_pickles_copies_and_checks_assignments():
    cfg = load_config(None, ["selection.selector=data_agent", "agent.preset=paper", "train.checkpoints_to_keep=3"])
    assert from_dict(cfg.to_dict()) == cfg and pickle.loads(pickle.dumps(cfg)) == cfg  # how Ray ships it
    other = copy.deepcopy(cfg)
    other.selection.lead.gamma = 0.5
    assert cfg.selection.lead.gamma == 0.07 and cfg.train.checkpoints_to_keep == 3
    assert (cfg.agent.gamma, cfg.agent.baseline) == (0.99, "critic")  # the preset filled what was unset
    with pytest.raises(ConfigError, match="train.epochs=0 must be at least 1"):
        other.train.epochs = 0
    with pytest.raises(ConfigError, match="unknown config key selection.lr \\(did you mean `agent.lr`\\?\\)"):
        Config(selection={"lr": 0.1})


def test_config_names_match_the_registries_it_does_not_import():
    from raydata_agent import signals
    from raydata_agent.config import HISTORY_VARIANTS, REWARD_VARIANTS
    from raydata_agent.selectors import SELECTORS

    assert set(SELECTOR_KNOBS) == set(SELECTORS)
    assert set(REWARD_VARIANTS) == set(signals.REWARD_VARIANTS) | set(signals.HISTORY_VARIANTS)
    assert HISTORY_VARIANTS == signals.HISTORY_VARIANTS
    code = "import sys, raydata_agent.config; print(sorted(m for m in sys.modules if m.startswith('raydata_agent')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "raydata_agent.selectors" not in loaded and "raydata_agent.signals" not in loaded, loaded


def test_reference_page_is_generated_from_the_schema():
    from raydata_agent.config.reference import COMMAND, render

    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert page == render(), f"docs/reference/config.md is out of date; regenerate it: {COMMAND}"
    for key in Config().flat():
        assert f"| `{key}` |" in page, key


def test_sweep_trials_are_built_from_dicts_with_nested_knob_keys(tmp_path):
    from raydata_agent.sweep import load_config_from, load_sweep, trials

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"selection": {"selector": "lead"},
                                    "sweep": {"grid": {"selection.lead.gamma": [0.1, 0.2]}, "full_baseline": False}}))
    raw, sweep = load_sweep(str(spec), ["train.epochs=2"])
    cfgs = [load_config_from(raw, trial) for trial in trials(sweep)]
    assert [(c.selection.lead.gamma, c.train.epochs) for c in cfgs] == [(0.1, 2), (0.2, 2)]
    spec.write_text(yaml.safe_dump({"sweep": {"grid": {"selection.lead_gamma": [0.1]}}}))
    with pytest.raises(ConfigError, match="is not a config key \\(it is now selection.lead.gamma\\)"):
        load_sweep(str(spec), [])
