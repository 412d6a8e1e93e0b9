"""`agent:`: the Data Agent (docs: concepts/agent), and the presets that fill the keys left unset."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from raydata_agent.config.fields import Bool, Float, Int, Section

# What `agent.preset` sets for the keys a config leaves unset (None). "v2" is the default agent;
# "paper" is the formulation of arXiv 2603.07433 (reward a * score, features-only state, GAE along
# each sample's visits, no warm start, plain top-k). The docs' agent page lists each deviation.
AGENT_PRESETS = {
    "v2": {"hidden": 64, "reward": "agreement", "state": "full", "payoff": "rank", "gamma": 0.0, "lr": 1e-3,
           "warm_start_passes": 64, "replay_passes": 4, "class_balanced": True,
           "max_concentration": 40.0, "baseline": "self_critical"},
    "paper": {"hidden": 128, "reward": "score", "state": "features", "payoff": "linear", "gamma": 0.99, "lr": 3e-4,
              "warm_start_passes": 0, "replay_passes": 0, "class_balanced": False,
              "max_concentration": 0.0, "baseline": "critic"},
}
REWARD_SCALES = ("per_sample", "none")
PAYOFFS = ("rank", "margin", "linear")
ADVANTAGE_BASELINES = ("critic", "self_critical")
AGENT_LEARNERS = ("ppo", "regression")
AGENT_SCHEDULES = ("deterministic", "async")
AGENT_REWARDS = ("agreement", "score")
AGENT_STATES = ("full", "features")
FIT_SIGNALS = ("task", "loss")
_PRESET = "unset: the preset's"


class AgentConfig(Section):
    """The Data Agent. Keys left None take the value of `preset`."""

    dotted = "agent"
    preset: Literal[tuple(AGENT_PRESETS)] = Field("v2", description="fills the keys left unset: v2 | paper")
    hidden: Int | None = Field(None, ge=1, description=(
        f"{_PRESET}; v2: 64 (the same quality as 128 at 5 paired seeds; at 128 the actor's MLP was a third "
        "of a worker's time in bench_store.py); paper: 128"))
    lr: Float | None = Field(None, gt=0.0, description=(
        f"{_PRESET}; v2: 1e-3 (3e-3 swung the policy; 3e-4 learned too slowly); paper: 3e-4"))
    clip: Float = Field(0.2, gt=0.0, le=1.0, description="PPO's clip parameter")
    gamma: Float | None = Field(None, ge=0.0, le=1.0, description=(
        f"{_PRESET}; v2: 0 (each visit's reward is immediate); paper: 0.99, GAE over visits"))
    gae_lambda: Float = Field(0.95, ge=0.0, le=1.0, description="GAE's lambda")
    num_epochs: Int = Field(4, ge=1, description="PPO epochs per update")
    minibatch_size: Int = Field(256, ge=1, description="PPO minibatch")
    entropy_coeff: Float = Field(0.0, description="PPO's entropy bonus")
    vf_coeff: Float = Field(0.5, description="PPO's value-function loss weight")
    reward_scale: Literal[REWARD_SCALES] = Field("per_sample", description=(
        "per_sample: divide by the running std of per-sample rewards | none"))
    reward: Literal[AGENT_REWARDS] | None = Field(None, description=(
        f"{_PRESET}; agreement: score * label agreement | score: the paper's composite score"))
    payoff: Literal[PAYOFFS] | None = Field(None, description=(
        f"{_PRESET}; what an action earns from its sample's reward target t (acting.training_reward). "
        "rank: -(a - y)^2, y = t's percentile among the pool's latest targets | margin: a * (t - the pool's "
        "(1-ratio) target quantile) | linear: a * t (the paper's eq. 6)"))
    baseline: Literal[ADVANTAGE_BASELINES] | None = Field(None, description=(
        f"{_PRESET}; an advantage's baseline: critic (a learned value function, GAE) | self_critical (the "
        "payoff of the policy's mean action; needs gamma 0: a visit's reward is the whole return)"))
    state: Literal[AGENT_STATES] | None = Field(None, description=(
        f"{_PRESET}; full: features + loss, signals, agreement, staleness | features: features only"))
    max_concentration: Float | None = Field(None, description=(
        f"{_PRESET}; bound on the Beta's alpha + beta, 0 or > 2 (v2: 40, a spread of at least ~0.08 at "
        "a = 0.5); 0: unbounded (paper)"))
    learner: Literal[AGENT_LEARNERS] = Field("ppo", description=(
        "ppo: RLlib's PPO Learner | regression: the ablation that fits the policy mean to the rank target y "
        "by least squares on the same transitions and state (payoff=rank only; no exploration credit)"))
    warm_start_passes: Int | None = Field(None, ge=0, description=(
        f"{_PRESET}; PPO passes over the first epoch's transitions at its end (0: off)"))
    replay_passes: Int | None = Field(None, ge=0, description=(
        f"{_PRESET}; after each later epoch: PPO passes over each panel sample's latest transition"))
    class_balanced: Bool | None = Field(None, description=f"{_PRESET}; each class gets its share of the budget")
    agreement_decay: Float = Field(0.7, ge=0.0, lt=1.0, description=(
        "EMA of the given label's probability: a <- d a + (1 - d) p_y"))
    fit_signal: Literal[FIT_SIGNALS] = Field("task", description=(
        "p(given label) in the state and the label agreement. task: the task's own (TaskOutput.fit: "
        "detection, segmentation), else exp(-loss) | loss: exp(-loss) always (the classification default "
        "carried over; for cross-entropy the two are the same)"))
    panel_size: Int = Field(4096, ge=1, description="samples whose transitions reach the learner (a fixed "
                                                    "hashed subset)")
    update_every: Int = Field(256, ge=1, description="the learner runs a PPO update once this many "
                                                     "transitions arrived")
    send_every: Int = Field(8, ge=1, description="a worker sends its panel transitions to the learner every "
                                                 "this many batches")
    schedule: Literal[AGENT_SCHEDULES] = Field("async", description=(
        "async: act with whatever weights have arrived (runs do not reproduce per seed) | deterministic: "
        "calls at fixed batch counts, each answer's weights waited for at the next call (one worker: same "
        "seed, same selections; 3.6 pt below async on (b) at 0.5, docs/concepts/data-agent.md)"))
    learner_cpus: Float = Field(0.0, ge=0.0, description="CPUs the learner actor reserves (and its torch "
                                                         "threads, at least 1)")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """The preset's value for each key left unset; an unknown preset is named by its Literal."""
        if isinstance(data, dict) and data.get("preset", "v2") in AGENT_PRESETS:
            preset = AGENT_PRESETS[data.get("preset", "v2")]
            data = {**data, **{k: v for k, v in preset.items() if data.get(k) is None}}
        return data
