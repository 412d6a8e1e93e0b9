"""Render the results page from the committed figures: benchmarks/results/<script>.json -> docs/results.md.

One JSON file per benchmark script holds that script's current figures, transcribed from its own
`--json` output or printed table, with the command and the machine that produced them. This script
turns them into docs/results.md (one section per script, in ORDER), and writes the quality table
into README.md between its two `results:quality` markers, so the README's one table is the page's.
It measures nothing. tests/benchmarks/test_results_page.py fails when a committed page differs from a fresh render.

    .venv/bin/python benchmarks/render_results.py            # rewrite docs/results.md and the README table
    .venv/bin/python benchmarks/render_results.py --check    # exit 1 if either is out of date

A results file: {script, title, summary, machine, tables: [{title, command, note, columns, rows, held_out}],
notes}. A table with "held_out": true holds figures of a held-out set (benchmarks/quality.py's (d), (e)):
its title says so and links the protocol (docs/guides/benchmarks.md).
A table cell is a string, or {"mean": m, "std": s} (printed "m ± s"), or {"diff": d, "ci": [lo, hi]}
(a paired difference with its 95% interval, bold where the interval excludes zero, "tie" where not),
or null (not measured, e.g. the forced share of a run from before it was logged: "–").
Numbers print as written in the JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
README_BEGIN, README_END = "<!-- results:quality begin -->", "<!-- results:quality end -->"
ORDER = ["quality", "agent_ablation", "overhead", "bench_store", "bench_pool", "orchestration_tax",
         "input_throughput", "bench_task_step", "sweep"]

HEADER = """# Benchmark results

The current figure of every script in `benchmarks/`, with the command and the machine that produced
it. Timings are ratios against a baseline measured in the same run; an absolute figure holds only
for the machine named. This page is generated: edit `benchmarks/results/<script>.json`, then run
`python benchmarks/render_results.py` (the test suite fails when the page and the files disagree).
Earlier figures and how they were reached are in the git history of `benchmarks/RESULTS.md`.
Quality: every default is chosen on the tuning sets (a)-(c) and reported on the held-out sets (d), (e);
the protocol is in the [benchmarks guide](guides/benchmarks.md).
"""
HELD_OUT_NOTE = ("Held out: no default was chosen on this set ([protocol](guides/benchmarks.md)). A change tuned on "
                 "it moves it into the tuning group.")


def number(x: float | int, sign: bool = False) -> str:
    """As written in the JSON, with a real minus sign (and a plus where a difference is meant)."""
    text = repr(abs(x)) if isinstance(x, float) else str(abs(x))
    return ("−" if x < 0 else "+" if sign else "") + text


def cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return number(value)
    if "mean" in value:
        return f"{number(value['mean'])} ± {number(value['std'])}"
    if "diff" in value:
        low, high = value["ci"]
        text = f"{number(value['diff'], sign=True)} [{number(low, sign=True)}, {number(high, sign=True)}]"
        return f"**{text}**" if low > 0 or high < 0 else f"{text} tie"
    raise ValueError(f"cannot render cell {value!r}")


def table(spec: dict) -> str:
    lines = ["| " + " | ".join(spec["columns"]) + " |", "|" + "---|" * len(spec["columns"])]
    for row in spec["rows"]:
        if len(row) != len(spec["columns"]):
            raise ValueError(f"{spec['title']}: row {row!r} has {len(row)} cells, not {len(spec['columns'])}")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines)


def section(result: dict) -> str:
    parts = [f"## {result['title']} (`{result['script']}`)", result["summary"], f"**Machine:** {result['machine']}"]
    for spec in result["tables"]:
        parts.append(f"### {spec['title']}" + (" (held out)" if spec.get("held_out") else ""))
        if spec.get("held_out"):
            parts.append(HELD_OUT_NOTE)
        if spec.get("command"):
            parts.append("```bash\n" + spec["command"] + "\n```")
        if spec.get("note"):
            parts.append(spec["note"])
        parts.append(table(spec))
    if result.get("notes"):
        parts.append("\n".join(f"- {note}" for note in result["notes"]))
    return "\n\n".join(parts)


def load() -> dict[str, dict]:
    found = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}
    unknown = set(found) - set(ORDER)
    if unknown:
        raise SystemExit(f"results files with no place on the page: {sorted(unknown)}; add them to ORDER")
    return {name: found[name] for name in ORDER if name in found}


def render_page(results: dict[str, dict]) -> str:
    return "\n\n".join([HEADER.strip()] + [section(result) for result in results.values()]) + "\n"


def render_readme(results: dict[str, dict], readme: str) -> str:
    """The README's one table: the quality table at equal cost, as the page shows it."""
    quality = results["quality"]["tables"][0]
    block = f"{README_BEGIN}\n{table(quality)}\n{README_END}"
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no {README_BEGIN} ... {README_END} block")
    return pattern.sub(lambda _: block, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a rendered file is out of date")
    args = parser.parse_args(argv)
    results = load()
    wanted = {PAGE: render_page(results), README: render_readme(results, README.read_text())}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python benchmarks/render_results.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
