"""The results page's held-out quality tables: marked as held out with the protocol linked, and a
figure an older run did not log (the forced share) shown as missing."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_a_held_out_table_says_so_and_a_missing_cell_renders():
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "benchmarks" / "render_results.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    table = {"title": "(e) textures, long-tailed", "command": "python benchmarks/quality.py --data e",
             "columns": ["selector", "val %", "tail recall %", "forced share"],
             "rows": [["cyclic", {"mean": 70.1, "std": 1.2}, {"mean": 40.0, "std": 3.0}, None]]}
    text = render.section({"script": "quality.py", "title": "Quality", "summary": "s", "machine": "m",
                           "tables": [table, {**table, "title": "(e) again", "held_out": True}]})
    assert "### (e) textures, long-tailed\n" in text and "### (e) again (held out)" in text
    assert text.count("guides/benchmarks.md") == 1 and "| cyclic | 70.1 ± 1.2 | 40.0 ± 3.0 | – |" in text
    assert (ROOT / "docs" / "guides" / "benchmarks.md").is_file()
