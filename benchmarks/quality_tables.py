"""benchmarks/quality.py's printed tables: metric, paired differences, ground-truth shares, tail recall
and the forced share of the selection budget, from quality.analyse's cells and paired differences."""
from __future__ import annotations


def tables(cells: list[dict], paired: list[dict], ratios: list[float], against: tuple | list,
           paired_tail: list[dict] | None = None) -> str:
    """The text tables; `against`: the baselines every selector is paired with."""
    pct = lambda x: f"{100 * x:5.1f}"  # noqa: E731
    cell = {(c["selector"], c["ratio"]): c for c in cells}
    selectors = sorted({c["selector"] for c in cells if c["selector"] != "full"})
    w = max([15, *map(len, selectors)])  # the name column fits merged variants' names
    v = max([15, *map(len, against)])
    out = ["Final val metric (%), mean +- std over seeds  [realised cost fraction]",
           f"{'selector':{w}s}" + "".join(f"{'ratio ' + str(r):>24s}" for r in ratios) + f"{'full':>24s}"]
    full = cell.get(("full", 1.0))
    full_txt = f"{pct(full['metric_mean'])} +- {100 * full['metric_std']:4.1f} [{full['cost_fraction']:.2f}]" if full else "-"
    for s in selectors:
        parts = []
        for r in ratios:
            c = cell.get((s, r))
            parts.append(f"{pct(c['metric_mean'])} +- {100 * c['metric_std']:4.1f} [{c['cost_fraction']:.2f}]"
                         if c else "-")
        out.append(f"{s:{w}s}" + "".join(f"{p:>24s}" for p in parts) + f"{'':>24s}")
    if full:
        out.append(f"{'full':{w}s}" + "".join(f"{'':>24s}" for _ in ratios) + f"{full_txt:>24s}")
    ns = sorted({c["n"] for c in cells})
    out.append(f"(seeds per cell: {', '.join(map(str, ns))}; selection-epoch kept fraction: "
               + ", ".join(f"{s}@{c['ratio']}={c['selection_cost_fraction']:.3f}" for (s, _), c in sorted(cell.items())
                           if s != "full" and abs(c["selection_cost_fraction"] - c["ratio"]) > 0.005) + ")"
               if any(abs(c["selection_cost_fraction"] - c["ratio"]) > 0.005 for c in cells if c["selector"] != "full")
               else f"(seeds per cell: {', '.join(map(str, ns))}; every selector kept exactly its ratio in selection epochs)")
    out += ["", "Paired difference (pt) vs baseline at the same ratio: mean [95% t-interval over seeds]",
            *_paired_lines(paired, selectors, ratios, against, w, v)]
    if any(c.get("tail_recall_mean") is not None for c in cells):
        out += ["", "Tail recall (%): mean recall of the rarest classes (val_tail_recall), mean +- std over seeds",
                f"{'selector':{w}s}" + "".join(f"{'ratio ' + str(r):>16s}" for r in ratios) + f"{'full':>16s}"]
        for s in [*selectors, "full"]:
            vals = [cell.get((s, r)) for r in ([1.0] if s == "full" else ratios)]
            parts = [f"{pct(c['tail_recall_mean'])} +- {100 * c['tail_recall_std']:4.1f}"
                     if c and c.get("tail_recall_mean") is not None else "-" for c in vals]
            if s == "full":
                parts = [""] * len(ratios) + parts
            if any(x not in ("-", "") for x in parts):
                out.append(f"{s:{w}s}" + "".join(f"{x:>16s}" for x in parts))
        if paired_tail:
            out += ["", "Paired difference of tail recall (pt) vs baseline: mean [95% t-interval over seeds]",
                    *_paired_lines(paired_tail, selectors, ratios, against, w, v)]
    if any(c.get("forced_share") is not None for c in cells if c["selector"] != "full"):
        out += ["", "Share of the selection budget forced by staleness (selection_forced_share, mean over seeds)",
                f"{'selector':{w}s}" + "".join(f"{'ratio ' + str(r):>12s}" for r in ratios)]
        for s in selectors:
            vals = [cell[(s, r)].get("forced_share") if (s, r) in cell else None for r in ratios]
            out.append(f"{s:{w}s}" + "".join(f"{x:12.3f}" if x is not None else f"{'-':>12s}" for x in vals))
    truth = sorted({t for c in cells for t in c["trained"]})
    if truth:
        out += ["", "Share of each ground-truth group trained on per selection epoch (random: = ratio)",
                f"{'selector':{w}s}" + "".join(f"{t + ' @' + str(r):>19s}" for r in ratios for t in truth)]
        for s in selectors:
            vals = [cell[(s, r)]["trained"].get(t) if (s, r) in cell else None for r in ratios for t in truth]
            out.append(f"{s:{w}s}" + "".join(f"{v:19.3f}" if v is not None else f"{'-':>19s}" for v in vals))
    return "\n".join(out)


def _paired_lines(paired: list[dict], selectors: list[str], ratios: list[float], against, w: int, v: int) -> list[str]:
    out = [f"{'selector':{w}s} {'vs':{v}s}" + "".join(f"{'ratio ' + str(r):>22s}" for r in ratios)]
    pair = {(p["selector"], p["baseline"], p["ratio"]): p for p in paired}
    for s in selectors:
        for b in against:
            if s == b:
                continue
            parts = []
            for r in ratios:
                p = pair.get((s, b, r))
                parts.append(f"{100 * p['diff_mean']:+5.1f} [{100 * p['ci_low']:+5.1f},{100 * p['ci_high']:+5.1f}]"
                             if p else "-")
            if any(x != "-" for x in parts):
                out.append(f"{s:{w}s} {b:{v}s}" + "".join(f"{x:>22s}" for x in parts))
    return out
