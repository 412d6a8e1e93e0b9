"""Selector registry: `selection.selector` names one of these."""
from raydata_agent.selectors.bandit import EpsilonGreedySelector, UCBSelector
from raydata_agent.selectors.cyclic import CyclicSelector
from raydata_agent.selectors.data_agent import DataAgentSelector
from raydata_agent.selectors.base import Selection, Selector
from raydata_agent.selectors.full import FullSelector
from raydata_agent.selectors.greedy import GreedySelector
from raydata_agent.selectors.infobatch import InfoBatchSelector
from raydata_agent.selectors.lead import LEADSelector
from raydata_agent.selectors.random import RandomDynamicSelector, RandomStaticSelector

SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls
    for cls in (FullSelector, RandomStaticSelector, RandomDynamicSelector, InfoBatchSelector,
                GreedySelector, UCBSelector, EpsilonGreedySelector, LEADSelector, DataAgentSelector,
                CyclicSelector)
}


def build_selector(cfg, num_samples: int, total_epochs: int, seed: int = 0, **extra) -> Selector:
    if cfg.selector not in SELECTORS:
        raise KeyError(f"unknown selector {cfg.selector!r}; registered: {', '.join(sorted(SELECTORS))}")
    return SELECTORS[cfg.selector](cfg, num_samples, total_epochs, seed, **extra)


__all__ = ["SELECTORS", "Selection", "Selector", "build_selector"]
