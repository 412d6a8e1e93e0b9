"""Data Agent ablation on the simulated flipped-label problem of tests/agent/test_data_agent.py (no Ray, no model).

1500 samples, 5 classes, 30% flipped labels; a simulated model whose belief in each sample's true class
grows with training, and which memorises a flipped label only by training on it. Each variant runs the
real SelectionSession -> ScoreStore -> selector (-> worker acting -> RLlib learner) path for 8 epochs at
ratio 0.5 and reports the share of flipped samples among those selected (epochs 2..7: random keeps 0.30,
lower is better), mean over seeds. "greedy_on_v2_target" ranks by the agent's own reward target with no
policy: the ceiling of any regressor of that target, and the honest check of what PPO adds.

    .venv/bin/python benchmarks/agent_ablation.py [--seeds 0 1 2] [--json PATH]

JSON keys (--json PATH): seeds, command, date, variants: [{variant, selector, overrides,
flipped_share_mean, flipped_share: {seed: share}, seconds}].
"""
from __future__ import annotations

# A benchmark times internal parts (pool, store, tasks, data paths), so it imports them by module;
# whole runs go through the public API (`import raydata_agent as rda`).
import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

VARIANTS = {
    "greedy": ("greedy", ()),
    "random_dynamic": ("random_dynamic", ()),
    "infobatch": ("infobatch", ()),
    "data_agent (v2)": ("data_agent", ()),
    "v2, reward=score": ("data_agent", ("agent.reward=score",)),
    "v2, state=features": ("data_agent", ("agent.state=features",)),
    "v2, no warm start": ("data_agent", ("agent.warm_start_passes=0",)),
    "v2, no class balance": ("data_agent", ("agent.class_balanced=false",)),
    "v2, payoff=margin": ("data_agent", ("agent.payoff=margin",)),
    "v2, baseline=critic": ("data_agent", ("agent.baseline=critic",)),
    "v2, unbounded Beta": ("data_agent", ("agent.max_concentration=0",)),
    "v2, no replay": ("data_agent", ("agent.replay_passes=0",)),
    "v2, learner=regression": ("data_agent", ("agent.learner=regression",)),
    "paper preset": ("data_agent", ("agent.preset=paper",)),
    "greedy_on_v2_target": ("data_agent", ()),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--json", default=None, help="write the figures here (keys: module docstring)")
    args = parser.parse_args()
    import test_data_agent as sim  # the simulated problem the test asserts on

    from raydata_agent.selectors.data_agent import DataAgentSelector

    policy_weights = DataAgentSelector.weights
    records = []
    print(f"{'variant':24s} {'flipped share':>14s} {'per seed':>20s} {'s':>6s}", flush=True)
    for name in args.variants:
        selector, overrides = VARIANTS[name]
        if name == "greedy_on_v2_target":
            DataAgentSelector.weights = lambda self, pool, epoch: np.where(pool.seen, self.target, 1.0).astype(np.float32)
        rates, start = [], time.perf_counter()
        for seed in args.seeds:
            rate, _ = sim.run_simulation(selector, Path(tempfile.mkdtemp()), overrides=(*overrides, f"train.seed={seed}"),
                                         data_seed=seed)
            rates.append(rate)
        DataAgentSelector.weights = policy_weights
        print(f"{name:24s} {np.mean(rates):14.3f} {' '.join(f'{r:.3f}' for r in rates):>20s} "
              f"{time.perf_counter() - start:6.0f}", flush=True)
        records.append({"variant": name, "selector": selector, "overrides": list(overrides),
                        "flipped_share_mean": float(np.mean(rates)),
                        "flipped_share": {str(s): float(r) for s, r in zip(args.seeds, rates)},
                        "seconds": round(time.perf_counter() - start, 1)})
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seeds": args.seeds, "command": " ".join(sys.argv),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "variants": records}, indent=2))
        print(f"[agent_ablation] JSON: {args.json}")


if __name__ == "__main__":
    main()
