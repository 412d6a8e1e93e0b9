"""Selector registry: `selection.selector` names one of these.

Each selector's module loads only when its name is looked up: `data_agent` imports torch and RLlib
(seconds), which a run with any other selector, and the score store actor's start, need not pay.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from raydata_agent.selectors.base import Selection, Selector

# name -> "module:Class"; one line per selector.
_REGISTRY = {
    "full": "raydata_agent.selectors.full:FullSelector",
    "random_static": "raydata_agent.selectors.random:RandomStaticSelector",
    "random_dynamic": "raydata_agent.selectors.random:RandomDynamicSelector",
    "infobatch": "raydata_agent.selectors.infobatch:InfoBatchSelector",
    "greedy": "raydata_agent.selectors.greedy:GreedySelector",
    "ucb": "raydata_agent.selectors.bandit:UCBSelector",
    "eps_greedy": "raydata_agent.selectors.bandit:EpsilonGreedySelector",
    "lead": "raydata_agent.selectors.lead:LEADSelector",
    "data_agent": "raydata_agent.selectors.data_agent:DataAgentSelector",
    "cyclic": "raydata_agent.selectors.cyclic:CyclicSelector",
}


class _LazyClasses(Mapping):
    """A read-only dict name -> selector class that imports a class's module on first lookup."""

    def __init__(self, table: dict[str, str]):
        self._table = table

    def __getitem__(self, name: str) -> type[Selector]:
        module, cls = self._table[name].split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


SELECTORS: Mapping[str, type[Selector]] = _LazyClasses(_REGISTRY)


def build_selector(cfg, num_samples: int, total_epochs: int, seed: int = 0, **extra) -> Selector:
    if cfg.selector not in SELECTORS:
        raise KeyError(f"unknown selector {cfg.selector!r}; registered: {', '.join(sorted(SELECTORS))}")
    return SELECTORS[cfg.selector](cfg, num_samples, total_epochs, seed, **extra)


__all__ = ["SELECTORS", "Selection", "Selector", "build_selector"]
