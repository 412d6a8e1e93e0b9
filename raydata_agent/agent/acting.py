"""The agent's acting half, in the training worker next to the features (docs/design.md#acting-and-learning).

This is RLlib's EnvRunner/Learner split with the training loop in the EnvRunner's place: each
worker holds an inference-only copy of the learner's RLModule with a weight version, acts on every
batch it trains on, and sends the learner (the `DataAgent` actor) only a bounded sample of
transitions. Weights come back on the same round trip, as an EnvRunner's are synced after each
training step: at its call points the worker makes one call to the learner (`observe` with its panel
transitions, or `publish` when it has none), whose answer carries the newest weights if they are
newer than the worker's. No Ray call is made per batch (measured: a per-batch poll cost ~15% of the
worker's time in bench_store.py). No feature matrix crosses the network or is kept per sample: the
store gets each sample's action (its selection weight) and reward target.

When weights are loaded is `agent.schedule`:
- deterministic (default): the call points are fixed batch counts (every `send_every` batches, once
  the worker holds half an update of transitions; and each epoch's end and start). At call point k
  the worker waits for call k-1's answer and loads its weights, so the batches up to call point k+1
  act with the learner's version after call k-1, whatever the timing. Nothing is dropped, and the
  epoch's last call is waited for, so the learner's `end_epoch` comes after it. The learner consumes
  one worker's transitions in the order sent: the same seed gives the same actions and selections.
  With several workers their calls interleave at the learner in arrival order (not reproducible).
- async: a call is also made once MAX_CALL_GAP_S passed, answers are collected without blocking
  (`ray.wait(timeout=0)`), and transitions are dropped (counted) while MAX_SENDS_IN_FLIGHT calls are
  pending: a worker never waits for a PPO update, but which weights act depends on timing.
"""
from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from raydata_agent.config import AgentConfig
from raydata_agent.signals import label_agreement

MODULE_ID = "default_policy"  # ray.rllib.core.DEFAULT_MODULE_ID
CONTEXT_COLUMNS = ("agreement", "staleness", "seen")  # per-sample history the plan ships to workers
STATE_SCALARS = 7  # scalars appended to the normalised features in the "full" state
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)  # the pool's target quantiles shipped with each plan
MAX_SENDS_IN_FLIGHT = 4  # async: more than this, a worker drops (and counts) transitions rather than wait
MAX_CALL_GAP_S = 0.5  # async: a worker with few panel transitions still calls the learner (for weights) this often
ACTION_EPS = 1e-6  # actions are kept inside (0, 1): log-prob at exactly 0 or 1 is -inf
UNIFORM_LOGIT = -30.0  # softplus / sigmoid of it vanish in float32: the Beta's alpha = beta = 1


# --- calls to the learner: a Ray actor handle, or an in-process DataAgent (tests, benchmarks) -----
@dataclass
class Done:
    """The result of a call made in process: ready at once."""

    value: object


def call(target, method: str, *args):
    fn = getattr(target, method)
    return fn.remote(*args) if hasattr(fn, "remote") else Done(fn(*args))


def is_ready(ref) -> bool:
    if isinstance(ref, Done):
        return True
    import ray

    return bool(ray.wait([ref], timeout=0)[0])


def ready_split(refs: list) -> tuple[list, list]:
    """(answered, still waiting) among calls made with `call`, without blocking."""
    local = [r for r in refs if isinstance(r, Done)]
    remote = [r for r in refs if not isinstance(r, Done)]
    if not remote:
        return local, []
    import ray

    ready, waiting = ray.wait(remote, num_returns=len(remote), timeout=0)
    return local + ready, waiting


def fetch(ref):
    if isinstance(ref, Done):
        return ref.value
    import ray

    return ray.get(ref)


# --- the state, the reward target, the panel -------------------------------------------------------
def obs_dim(feature_dim: int, state: str) -> int:
    return feature_dim + (STATE_SCALARS if state == "full" else 0)


def build_state(features, loss: np.ndarray, difficulty: np.ndarray, uncertainty: np.ndarray,
                context: np.ndarray, state: str) -> torch.Tensor:
    """The agent's observation of each sample in a batch, on the features' device (no copy to host).

    "features" (the paper): the pooled features as they come. "full": the features scaled to unit
    length (their scale drifts as the model trains) plus what greedy knows and more: difficulty,
    uncertainty, log(1 + loss), p(given label) now, its EMA over earlier visits (label agreement),
    epochs since the last visit (a fraction of the run), and whether the sample was seen before.
    """
    features = torch.as_tensor(features).detach().float()
    if state == "features":
        return features
    loss = np.asarray(loss, np.float32)
    seen = context[:, 2] > 0
    p_label = np.exp(-loss)
    scalars = np.stack([difficulty, uncertainty, np.log1p(loss), p_label,
                        np.where(seen, context[:, 0], p_label), context[:, 1], context[:, 2]], axis=1)
    unit = torch.nn.functional.normalize(features, dim=1, eps=1e-6)
    return torch.cat([unit, torch.from_numpy(scalars.astype(np.float32)).to(features.device)], dim=1)


def reward_target(score: np.ndarray, loss: np.ndarray, context: np.ndarray, cfg: AgentConfig) -> np.ndarray:
    """What a high action should pay for. "score": the paper's composite score. "agreement": the
    score times the label agreement after this visit, so a hard sample pays only while its label
    stays believable: flipped labels (confidently contradicted, visit after visit) pay little."""
    score = np.asarray(score, np.float32)
    if cfg.reward == "score":
        return score
    return score * label_agreement(context[:, 0], loss, context[:, 2] > 0, cfg.agreement_decay)


def payoff_param(target: np.ndarray, payoff: str, baseline: float | None = None,
                 quantiles: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """Each sample's payoff parameter p, from its reward target and the pool's latest targets (None:
    epoch 0, where this batch stands in for the pool): the reward of any action a is then
    `payoff_reward(a, p)`, so the learner can price actions the worker did not take. `rows` (a mask):
    p of those samples only (the panel's: no other p leaves the worker), against the whole batch.

    - rank: p = the target's percentile in the pool; r = -(a - p)^2. The best action is the sample's
      rank, so selection by action keeps the pool's best-ranked fraction, and every action gets a
      gradient: the policy cannot settle at a = 0, where a linear payoff gives none.
    - margin: p = target - q, q the pool's (1 - ratio) target quantile; r = a p. Pays for samples
      above the kept fraction's cut; its best action is 0 or 1. Measured to collapse to a = 0 on
      digits once the targets trained on fall below a cut set by older targets (RESULTS.md).
    - linear: p = target; r = a p, the paper's eq. 6.
    """
    target = np.asarray(target, np.float32)
    chosen = target if rows is None else target[rows]
    if payoff == "linear":
        return chosen
    if payoff == "margin":
        return chosen - (baseline if baseline is not None else float(np.quantile(target, 0.5)))
    if quantiles is None:
        quantiles = batch_quantiles(target)
    return percentile(chosen, np.asarray(quantiles, np.float64))


def batch_quantiles(values: np.ndarray) -> np.ndarray:
    """`np.quantile(values, QUANTILE_LEVELS)` (its default linear method, the same numbers) in a
    fifteenth of the time: one sort and one interpolation. It runs on every epoch-0 batch."""
    ordered = np.sort(values)
    return np.interp(QUANTILE_LEVELS * (len(ordered) - 1), np.arange(len(ordered)), ordered)


def percentile(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Where each value lies among evenly spaced quantiles, in [0, 1]: interpolated between them, and
    the middle of the run where quantiles tie (many equal targets share one rank, not an end of it)."""
    last = len(quantiles) - 1
    lo, hi = np.searchsorted(quantiles, values, "left"), np.searchsorted(quantiles, values, "right")
    j = np.clip(lo, 1, last)
    gap = np.maximum(quantiles[j] - quantiles[j - 1], 1e-12)
    between = j - 1 + np.clip((values - quantiles[j - 1]) / gap, 0.0, 1.0)
    return (np.where(hi > lo, (lo + hi - 1) / 2.0, between) / last).astype(np.float32)


def payoff_reward(actions, param, payoff: str):
    """r(a) for the payoff's parameter p (numpy or torch)."""
    return -(actions - param) ** 2 if payoff == "rank" else actions * param


def training_reward(actions: np.ndarray, target: np.ndarray, payoff: str, baseline: float | None = None,
                    quantiles: np.ndarray | None = None) -> np.ndarray:
    """What each action earns (agent.payoff); see `payoff_param`."""
    return payoff_reward(actions, payoff_param(target, payoff, baseline, quantiles), payoff)


def in_panel(ids: np.ndarray, fraction: float) -> np.ndarray:
    """The fixed, hashed subset of samples whose transitions reach the learner.

    The same ids on every worker and every epoch, so each panel sample's whole trajectory arrives
    (GAE along its visits stays correct) while the learner's memory stays bounded by the panel.
    """
    if fraction >= 1.0:
        return np.ones(len(ids), bool)
    hashed = (np.asarray(ids, np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return hashed < np.uint64(int(fraction * 2**32))


# --- acting -------------------------------------------------------------------------------------
def module_config(cfg: AgentConfig) -> dict:
    return {"hidden": cfg.hidden, "max_concentration": cfg.max_concentration}


def build_module(obs_size: int, cfg: AgentConfig, inference_only: bool):
    import gymnasium as gym
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from raydata_agent.agent.rl_module import DataAgentModule

    return RLModuleSpec(module_class=DataAgentModule, observation_space=observation_space(obs_size),
                        action_space=gym.spaces.Box(0.0, 1.0, (1,), np.float32), inference_only=inference_only,
                        model_config=module_config(cfg)).build()


def observation_space(obs_size: int):
    import gymnasium as gym

    return gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)  # 1-D: the default catalog's kind


@torch.no_grad()
def policy_act(module, obs: torch.Tensor):
    """Sample Beta actions from a module (learner's or inference copy): actions, logp, dist inputs.

    It calls the module's `_forward_exploration` (RLlib's hook: no_grad + `_forward`), not the public
    `forward_exploration`, whose wrapper walks every submodule twice per call to switch eval/train
    mode: a fifth of the policy's per-batch overhead at 256 rows, and a no-op for this module (no
    dropout, no batch norm)."""
    from ray.rllib.core.columns import Columns

    logits = module._forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    dist = module.get_exploration_action_dist_cls().from_logits(logits)
    actions = dist.sample()
    return actions.squeeze(-1), dist.logp(actions), logits


def uniform_act(n: int, cfg: AgentConfig, device: torch.device):
    """Actions before the learner's first weights arrive: Beta(1, 1), the uniform policy, with the
    distribution inputs that give it under the module's action distribution (BoundedBeta: mean logit 0,
    concentration logit -30; TorchBeta: both -30) and its log-prob, 0. It is a true behaviour policy,
    so PPO's importance ratio and the self-critical baseline stay exact for these transitions."""
    actions = torch.rand(n, device=device).clamp(ACTION_EPS, 1.0 - ACTION_EPS)
    logits = torch.full((n, 2), UNIFORM_LOGIT, device=device)
    if cfg.max_concentration:
        logits[:, 0] = 0.0
    return actions, torch.zeros(n, device=device), logits


def preload() -> threading.Thread:
    """Import RLlib (the acting copy's RLModule) in a background thread. A training worker calls this
    as its session arrives, so the ~1 s import overlaps the worker's own set-up (data, model) instead
    of stalling its first batch; the first `build_module` then finds it imported (or waits for it)."""
    thread = threading.Thread(target=importlib.import_module, args=("raydata_agent.agent.rl_module",),
                              name="preload-rllib", daemon=True)
    thread.start()
    return thread


class WorkerActing:
    """One training worker's acting copy of the policy; `act` is called on every trained batch."""

    def __init__(self, cfg: AgentConfig, learner, num_samples: int, seed: int = 0, device: str = "cpu"):
        self.cfg = cfg
        self.learner = learner
        self.device = torch.device(device)
        self.panel_fraction = min(1.0, cfg.panel_size / max(num_samples, 1))
        self.module = None
        self.version = -1  # -1: acting uniformly, no weights yet
        self.obs_size = 0
        self.epoch = -1  # the epoch of the last batch acted on
        self.outbox: list[tuple] = []
        self.last_call = time.perf_counter()
        self.calls: list = []  # observe / publish calls in flight; each answers with newer weights or None
        self.batches = 0
        self.dropped = 0
        self.busy_s = 0.0  # time spent acting since the last `take_busy`
        self.deterministic = cfg.schedule == "deterministic"
        torch.manual_seed(seed)

    def _refresh(self, obs_size: int, wait: bool = False) -> None:
        """Ask for the learner's first weights at the first batch and load them once they are here.
        In epoch 0 (full data; the first selection does not use its actions) the worker acts uniformly
        (`uniform_act`) until then, so no batch waits for the RLlib import or the learner's build.
        `wait`: block until they are here: a worker that starts later (restarted, resumed) acts for a
        selection, and a benchmark leaves start-up out. agent.schedule=deterministic: they are loaded
        at the first call point (`_collect`), not when they happen to arrive."""
        if self.module is not None:
            return
        if not self.obs_size:
            self.obs_size = obs_size
            self.calls.append(call(self.learner, "publish", -1, obs_size))
        self._collect(wait)

    def _collect(self, wait: bool = False) -> None:
        """Load the newest weights among the learner's answers that have arrived (`wait`: all of them);
        keep the rest waiting. The first answer also builds the acting copy. deterministic: only when
        waiting (at a call point), so arrival times never decide which weights act."""
        if self.deterministic and not wait:
            return
        answered, self.calls = (self.calls, []) if wait else ready_split(self.calls)
        newest = max((a for a in map(fetch, answered) if a is not None), key=lambda a: a[0], default=None)
        if newest is None or newest[0] <= self.version:
            return
        if self.module is None:
            self.module = build_module(self.obs_size, self.cfg, inference_only=True).to(self.device)
        self.module.set_state(newest[1])
        self.version = newest[0]

    def act(self, epoch: int, ids: np.ndarray, features, loss: np.ndarray, difficulty: np.ndarray,
            uncertainty: np.ndarray, score: np.ndarray, context: np.ndarray, baseline: float | None = None,
            quantiles: np.ndarray | None = None) -> dict:
        """Act on one trained batch; returns what the score store records for it."""
        start = time.perf_counter()
        obs_t = build_state(features, loss, difficulty, uncertainty, context, self.cfg.state).to(self.device)
        self._refresh(obs_t.shape[1], wait=epoch > 0)
        if epoch != self.epoch and self.module is not None:  # the learner fits between epochs: ask for it
            self.send(epoch)
        self.epoch = epoch
        acted = policy_act(self.module, obs_t) if self.module is not None else uniform_act(
            len(obs_t), self.cfg, obs_t.device)
        actions, logp, logits = (t.cpu().numpy() for t in acted)
        target = reward_target(score, loss, context, self.cfg)
        panel = in_panel(ids, self.panel_fraction)
        if panel.any():  # only the panel's transitions (states, rewards) leave the worker
            param = payoff_param(target, self.cfg.payoff, baseline, quantiles, rows=panel)
            reward = payoff_reward(actions[panel], param, self.cfg.payoff)
            obs = obs_t[torch.from_numpy(panel).to(obs_t.device)].cpu().numpy()
            self.outbox.append((ids[panel], obs, actions[panel], logp[panel], logits[panel], reward, param))
        self.batches += 1
        if self.batches % self.cfg.send_every == 0 and self._worth_a_call():
            self._call_learner(epoch)
        self.busy_s += time.perf_counter() - start
        return {"action": actions.astype(np.float32), "target": target.astype(np.float32), "version": self.version}

    def _worth_a_call(self) -> bool:
        """Whether a periodic call to the learner is due: it carries at least half an update of panel
        transitions, or MAX_CALL_GAP_S has passed (the newest weights still arrive). In a large pool the
        panel is a small share of each batch (0.4% at 1M rows), and a call every `send_every` batches
        carried a few transitions for the price of a Ray call (Ray calls, the store's included, were a
        tenth of a worker's time in bench_store.py). Where the pool fits the panel, every row is a
        transition and 8 batches of 16 or more rows already carry 128: the default's calls do not
        change there. The time gap is async only: a deterministic schedule counts transitions."""
        return (self._outbox_transitions() >= self.cfg.update_every // 2
                or (not self.deterministic and time.perf_counter() - self.last_call >= MAX_CALL_GAP_S))

    def _outbox_transitions(self) -> int:
        return sum(len(batch[0]) for batch in self.outbox)

    def send(self, epoch: int) -> None:
        """At an epoch's end (and start): ship the buffered panel transitions to the learner (or ask
        for newer weights). deterministic: wait for the answer and load it, so the learner's end_epoch
        follows this epoch's transitions and the next epoch acts with the weights fitted between."""
        self._call_learner(epoch)
        if self.deterministic:
            self._collect(wait=True)

    def _call_learner(self, epoch: int) -> None:
        """One call to the learner with the buffered transitions (or, with none, for newer weights);
        first load the weights that earlier calls brought back (deterministic: wait for them)."""
        self._collect(wait=self.deterministic)
        if not self.obs_size:  # nothing acted on yet
            return
        if not self.deterministic and len(self.calls) >= MAX_SENDS_IN_FLIGHT:  # behind: never wait for it
            self.dropped += self._outbox_transitions()
            self.outbox = []
            return
        self.last_call = time.perf_counter()
        if not self.outbox:
            self.calls.append(call(self.learner, "publish", self.version, self.obs_size))
        else:
            parts = [np.concatenate(p) for p in zip(*self.outbox)]
            self.outbox = []
            self.calls.append(call(self.learner, "observe", epoch, *parts, self.version, self.dropped))
            self.dropped = 0
        if isinstance(self.calls[-1], Done):  # answered already (a learner in this process): no timing
            self._collect(wait=True)

    def take_busy(self) -> float:
        busy, self.busy_s = self.busy_s, 0.0
        return busy
