"""benchmarks/quality.py's analysis: paired differences over seeds with a t-interval, and its table."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import quality  # noqa: E402


def row(selector, ratio, seed, metric, noisy=None):
    return {"run_id": f"{selector}{ratio}{seed}", "selector": selector, "ratio": ratio, "seed": seed,
            "metric": metric, "cost_fraction": 0.5 if selector != "full" else 1.0,
            "selection_cost_fraction": ratio, "trained": {} if noisy is None else {"is_noisy": noisy},
            **({"last_vals": [metric] * 3} if selector == "full" else {})}


def test_paired_interval_table_and_ground_truth_shares():
    from scipy import stats

    greedy = [0.90, 0.92, 0.91]
    agent = [0.93, 0.94, 0.95]
    rows = ([row("greedy", 0.5, s, m, noisy=0.9) for s, m in enumerate(greedy)]
            + [row("data_agent", 0.5, s, m, noisy=0.4) for s, m in enumerate(agent)]
            + [row("full", 1.0, s, 0.95) for s in range(3)])
    cells, paired, convergence = quality.analyse(rows)
    pair = next(p for p in paired if p["selector"] == "data_agent" and p["baseline"] == "greedy")
    diffs = np.array(agent) - np.array(greedy)
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert pair["n"] == 3 and pair["diff_mean"] == pytest.approx(diffs.mean())
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert not any(p["selector"] == "full" for p in paired) and set(convergence) == {0, 1, 2}
    text = quality.tables(cells, paired, [0.5], quality.BASELINES)
    assert "data_agent" in text and "+3.0 [" in text and "is_noisy @0.5" in text and "0.400" in text
    assert "kept exactly its ratio" in text


def test_merge_pools_seeds_of_two_runs_and_refuses_a_trial_twice(tmp_path, capsys):
    import json

    first = [row("data_agent", 0.5, s, 0.93 + s / 100) for s in range(3)] + [row("greedy", 0.5, s, 0.9) for s in range(3)]
    later = [row("data_agent", 0.5, s, 0.95) for s in (3, 4)] + [row("greedy", 0.5, s, 0.9) for s in (3, 4)]
    for name, rows in (("first", first), ("later", later)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"command": name, "rows": rows}))
    out = tmp_path / "merged.json"
    quality.merge([str(tmp_path / "first.json"), str(tmp_path / "later.json")], str(out))
    merged = json.loads(out.read_text())
    pair = next(p for p in merged["paired"] if p["selector"] == "data_agent" and p["baseline"] == "greedy")
    assert pair["n"] == 5 and merged["seeds"] == [0, 1, 2, 3, 4]
    assert pair["diff_mean"] == pytest.approx(np.mean([0.03, 0.04, 0.05, 0.05, 0.05]))
    with pytest.raises(SystemExit, match=r"\('data_agent', 0.5, 3\) is also in"):
        quality.merge([str(tmp_path / "later.json")] * 2, None)
    # a variant run with other overrides sits beside the default under its own name
    quality.merge([str(tmp_path / "later.json"),
                   f"{tmp_path / 'later.json'}:data_agent=data_agent/v,greedy=greedy/v"], str(out))
    merged = json.loads(out.read_text())
    assert {c["selector"] for c in merged["cells"]} == {"data_agent", "greedy", "data_agent/v", "greedy/v"}
    assert any(p["selector"] == "data_agent/v" and p["baseline"] == "greedy" and p["n"] == 2 for p in merged["paired"])
    # an ablation: variants paired against the default agent rather than the baselines
    (tmp_path / "variant.json").write_text(json.dumps({"rows": [row("data_agent", 0.5, s, 0.90) for s in (3, 4)]}))
    quality.merge([str(tmp_path / "later.json"), f"{tmp_path / 'variant.json'}:data_agent=data_agent/v"],
                  str(out), against=["data_agent"])
    merged = json.loads(out.read_text())
    assert {(p["selector"], p["baseline"]) for p in merged["paired"]} == {("data_agent/v", "data_agent"),
                                                                          ("greedy", "data_agent")}
    pair = next(p for p in merged["paired"] if p["selector"] == "data_agent/v")
    assert pair["n"] == 2 and pair["diff_mean"] == pytest.approx(-0.05)
    assert "data_agent/v" in capsys.readouterr().out
    (tmp_path / "old.json").write_text(json.dumps({"parent_run_id": "abc", "tracking_uri": "sqlite:///x"}))
    with pytest.raises(SystemExit, match="no 'rows'.*--analyse abc"):
        quality.merge([str(tmp_path / "old.json")], None)


def test_tail_recall_and_forced_share_at_low_ratios_and_merge_with_older_rows(tmp_path, capsys):
    import json

    def new(selector, ratio, seed, metric, tail, forced):
        return {**row(selector, ratio, seed, metric), "tail_recall": tail, "forced_share": forced}

    rows = ([new("data_agent", r, s, 0.80 + s / 100, 0.50 + s / 100, 0.1) for r in (0.1, 0.2) for s in range(3)]
            + [new("cyclic", r, s, 0.78, 0.40, 0.0) for r in (0.1, 0.2) for s in range(3)]
            + [new("full", 1.0, s, 0.85, 0.60, None) for s in range(3)])
    cells, paired, _ = quality.analyse(rows, against=["cyclic"])
    agent = next(c for c in cells if (c["selector"], c["ratio"]) == ("data_agent", 0.1))
    assert agent["tail_recall_mean"] == pytest.approx(0.51) and agent["tail_recall_std"] == pytest.approx(0.01)
    assert agent["forced_share"] == pytest.approx(0.1)
    tail = quality.paired_diffs(rows, ["cyclic"], "tail_recall")
    pair = next(p for p in tail if (p["selector"], p["ratio"]) == ("data_agent", 0.2))
    assert pair["n"] == 3 and pair["diff_mean"] == pytest.approx(0.11)
    assert next(p for p in paired if p["ratio"] == 0.2)["diff_mean"] == pytest.approx(0.03)
    text = quality.tables(cells, paired, [0.1, 0.2], ["cyclic"], tail)
    assert "ratio 0.1" in text and "ratio 0.2" in text and "Tail recall" in text and " 51.0 +-  1.0" in text
    assert "+11.0 [" in text and "forced by staleness" in text and "0.100" in text
    # older JSON: rows without tail recall or forced share pool with new ones; a cell missing them shows "-"
    (tmp_path / "old.json").write_text(json.dumps({"rows": [row("data_agent", 0.1, s, 0.8) for s in (3, 4)]}))
    (tmp_path / "new.json").write_text(json.dumps({"rows": rows}))
    quality.merge([str(tmp_path / "old.json"), str(tmp_path / "new.json")], str(tmp_path / "m.json"), ["cyclic"])
    merged = json.loads((tmp_path / "m.json").read_text())
    agent = next(c for c in merged["cells"] if (c["selector"], c["ratio"]) == ("data_agent", 0.1))
    assert agent["n"] == 5 and agent["forced_share"] is None and agent["tail_recall_mean"] is None
    assert next(p for p in merged["paired_tail_recall"] if p["ratio"] == 0.1)["n"] == 3  # seeds holding it
    assert "forced by staleness" in capsys.readouterr().out


def test_held_out_sets_are_long_tailed_noisy_and_valid_configs():
    from raydata_agent.config import from_dict

    assert "cyclic" in quality.ALL_SELECTORS and set(quality.HELD_OUT) == {"d", "e"}
    assert not set(quality.HELD_OUT) & {"a", "b", "c"}
    specs = {"d": {f"data.{k}": v for k, v in quality.GENERATED["d"].items()}, "e": quality.DATA["e"]}
    for spec in specs.values():
        assert 10 <= spec["data.imbalance"] <= 100 and spec["data.label_noise"] > 0
    assert {specs["d"]["data.noise_kind"], specs["e"]["data.noise_kind"]} == {"symmetric", "pair"}
    assert quality.DATA["d"]["data.name"] == "imagefolder" and "data.augment" not in quality.DATA["d"]  # standard recipe
    for flat in (quality.DATA["d"], quality.DATA["e"]):
        raw = {}
        for key, value in flat.items():
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
        from_dict(raw)


@pytest.mark.parametrize("task", sorted(quality.TASKS))
def test_detection_and_segmentation_variants_write_valid_sweeps(task, tmp_path):
    """Both variants have near-duplicates; only noisy has annotation noise; each is a config that loads."""
    import argparse

    import yaml

    from raydata_agent.config import from_dict

    written = {}
    for variant in ("clean", "noisy"):
        args = argparse.Namespace(task=task, variant=variant, data="a", epochs=None, experiment="q", device="cpu",
                                  selectors=["random_dynamic"], ratios=[0.5], seeds=[0], no_full=False, concurrent=1)
        raw = yaml.safe_load(quality.sweep_file(args, tmp_path).read_text())
        raw.pop("sweep")
        written[variant] = from_dict(raw).data
    assert written["clean"].duplicates == written["noisy"].duplicates == 0.2
    assert (written["clean"].label_noise, written["noisy"].label_noise) == (0.0, 0.3)
    assert written["clean"].name == written["noisy"].name == quality.TASKS[task]["data.name"]
