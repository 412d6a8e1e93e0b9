"""docs/results.md and the README's results table are what benchmarks/render_results.py makes of the
committed figures in benchmarks/results/*.json: edit the JSON, re-render, commit both."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[2]


def renderer():
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "benchmarks" / "render_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_is_rendered_from_the_json():
    render = renderer()
    results = render.load()
    assert (ROOT / "docs" / "results.md").read_text() == render.render_page(results), \
        "docs/results.md is out of date: run python benchmarks/render_results.py"
    readme = (ROOT / "README.md").read_text()
    assert readme == render.render_readme(results, readme), \
        "README.md's results table is out of date: run python benchmarks/render_results.py"


def test_every_script_has_its_figures_with_command_and_machine():
    results = renderer().load()
    assert list(results) == renderer().ORDER  # one results file per benchmark script, none left out
    for name, result in results.items():
        assert result["machine"] and result["tables"], name
        assert result["tables"][0].get("command"), f"{name}: the first table names no command"


def test_a_paired_difference_is_bold_only_when_its_interval_excludes_zero():
    cell = renderer().cell
    assert cell({"diff": 1.0, "ci": [0.3, 1.8]}) == "**+1.0 [+0.3, +1.8]**"
    assert cell({"diff": 0.2, "ci": [-0.04, 0.4]}) == "+0.2 [−0.04, +0.4] tie"
    assert cell({"diff": -5.0, "ci": [-6.9, -3.0]}) == "**−5.0 [−6.9, −3.0]**"
    assert cell({"mean": 98.2, "std": 0.2}) == "98.2 ± 0.2"
