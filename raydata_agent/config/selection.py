"""`selection:`: which selector keeps which samples, and each selector's own knobs.

Each selector with knobs has its own small model under `selection.<name>` (as lerobot keys a
policy's config by its type name); every one is always present with its defaults, and MLflow lists
only the active selector's. SELECTOR_KNOBS names every selector, knob-less ones too, so config
checks `selection.selector` without importing the selectors (which import config); a test
checks that it names exactly the selectors of selectors.SELECTORS.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from raydata_agent.config.fields import Float, Int, Section


class UCBConfig(Section):
    dotted = "selection.ucb"
    c: Float = Field(1.0, description="UCB exploration constant: loss + c * sqrt(2 ln t / pulls)")


class EpsGreedyConfig(Section):
    dotted = "selection.eps_greedy"
    epsilon: Float = Field(0.1, ge=0.0, le=1.0, description="fraction of the budget drawn at random")


class InfoBatchConfig(Section):
    dotted = "selection.infobatch"
    max_prune: Float = Field(0.7, ge=0.0, lt=1.0,
                             description="cap on the prune probability r (kept samples rescaled by 1/(1-r))")


class LeadConfig(Section):
    dotted = "selection.lead"
    clusters: Int = Field(7, ge=1, description="k-means clusters of the IDU difficulty score (EXP3 arms)")
    gamma: Float = Field(0.07, gt=0.0, le=1.0, description="EXP3 exploration g: p_k = (1-g) w_k / sum w + g / K")


# Every selector (selectors.SELECTORS) -> its knob model, None for a selector without knobs.
SELECTOR_KNOBS: dict[str, type[BaseModel] | None] = {
    "cyclic": None, "data_agent": None, "eps_greedy": EpsGreedyConfig, "full": None, "greedy": None,
    "infobatch": InfoBatchConfig, "lead": LeadConfig, "random_dynamic": None, "random_static": None,
    "ucb": UCBConfig}
SELECTOR_NAMES = tuple(sorted(SELECTOR_KNOBS))
SAMPLINGS = ("topk", "proportional")
LOSS_WEIGHTINGS = ("auto", "none", "inverse_ratio", "infobatch")


class SelectionConfig(Section):
    dotted = "selection"
    selector: Literal[SELECTOR_NAMES] = Field("infobatch", description="the selector (selectors/)")
    ratio: Float = Field(0.5, gt=0.0, le=1.0, description="kept fraction of the pool per epoch")
    delta: Float = Field(0.875, ge=0.0, le=1.0,
                         description="selection runs for the first delta of epochs, then all data (annealing)")
    warmup_epochs: Int = Field(1, ge=0, description="full-data epochs at the start for every non-full selector "
                                                    "(random too): equal cost")
    sampling: Literal[SAMPLINGS] = Field("topk", description="topk, or proportional: Gumbel top-k without "
                                                             "replacement")
    temperature: Float = Field(1.0, gt=0.0, description="proportional: sample in proportion to "
                                                        "weight ** (1 / temperature); -> 0 is top-k")
    loss_weighting: Literal[LOSS_WEIGHTINGS] = Field(
        "auto", description="auto: each selector's own (infobatch 1/(1-r), data_agent 1/ratio, else 1)")
    max_staleness: Int = Field(5, ge=1, description="topk: a sample unseen this many epochs is taken first, "
                                                    "so none starves")
    max_forced_share: Float = Field(0.5, gt=0.0, le=1.0,
                                    description="topk: stale samples take at most ceil(this * budget), oldest "
                                                "first; the weights choose the rest. Below 1 no sample starves; "
                                                "1: every stale sample jumps the queue, ordered by weight (the old rule)")
    ucb: UCBConfig = Field(default_factory=UCBConfig, description="selector=ucb")
    eps_greedy: EpsGreedyConfig = Field(default_factory=EpsGreedyConfig, description="selector=eps_greedy")
    infobatch: InfoBatchConfig = Field(default_factory=InfoBatchConfig, description="selector=infobatch")
    lead: LeadConfig = Field(default_factory=LeadConfig, description="selector=lead")
