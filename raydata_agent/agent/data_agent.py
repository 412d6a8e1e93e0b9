"""`DataAgent`: the Ray actor that learns the selection policy with RLlib's PPO (the Learner half).

The policy is an RLModule trained by RLlib's PPO Learner through a LearnerGroup built from a
PPOConfig; there is no environment and no EnvRunner. The training workers act in its place
(agent/acting.py): each holds an inference-only copy of the module and sends a bounded panel of
transitions to `observe`, whose answer carries newer weights (`publish` answers the same when a
worker has nothing to send). A PPO update runs here as soon as
`update_every` transitions have arrived, while training goes on: never on an epoch's critical path.
Advantages come from our own per-sample GAE (trajectories.py), so the batch we give the Learner
already holds them: RLlib's GAE connector works on episodes, which we do not have, and is left out.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from raydata_agent.agent.policy import policy_act
from raydata_agent.agent.rewards import payoff_reward
from raydata_agent.agent.spaces import MODULE_ID, action_space, module_config, observation_space
from raydata_agent.agent.trajectories import TrajectoryBuffer, TrainBatch
from raydata_agent.config import AgentConfig

log = logging.getLogger(__name__)


def running_stat():
    """RLlib's Welford accumulator (`RunningStat`), for the spread of per-sample rewards."""
    from ray.rllib.utils.filter import RunningStat

    return RunningStat()


def push_batch(stat, values: np.ndarray) -> None:
    """Merge a batch into `stat` as RLlib merges workers' stats (Chan et al.'s pairwise update)."""
    batch = running_stat()
    for value in np.asarray(values, np.float64).tolist():
        batch.push(value)
    stat.update(batch)


def population_std(stat) -> float:
    """sqrt(M2 / n) in float64, 1 until two rewards arrived: the reward scale as it always was.
    RLlib's own `std` divides by n - 1 and rounds to float32, which would move every scaled reward."""
    return float(np.sqrt(stat.sum_sq_diff_array / stat.n)) if stat.n > 1 else 1.0


def build_learner_group(cfg: AgentConfig, obs_size: int, seed: int):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from raydata_agent.agent.rl_module import DataAgentModule

    obs_space = observation_space(obs_size)
    act_space = action_space()
    config = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .environment(observation_space=obs_space, action_space=act_space)
        .framework("torch")
        .debugging(seed=seed)
        # A local learner inside this actor; our batches carry advantages, so no GAE connector.
        .learners(num_learners=0, add_default_connectors_to_learner_pipeline=False)
        .training(lr=cfg.lr, clip_param=cfg.clip, gamma=cfg.gamma, lambda_=cfg.gae_lambda,
                  num_epochs=cfg.num_epochs, minibatch_size=cfg.minibatch_size, vf_loss_coeff=cfg.vf_coeff,
                  entropy_coeff=cfg.entropy_coeff, use_kl_loss=False, vf_clip_param=float("inf"),
                  # A self-critical baseline needs no value function: training the critic anyway was
                  # half of each update's arithmetic, for values nothing read.
                  use_critic=cfg.baseline == "critic")
        .rl_module(rl_module_spec=RLModuleSpec(module_class=DataAgentModule, observation_space=obs_space,
                                               action_space=act_space, model_config=module_config(cfg)))
    )
    return config.build_learner_group()


class DataAgent:
    """publish / observe / end_epoch / act / state / load_state. Workers call publish and observe
    (any order across workers); the score store calls end_epoch and state."""

    def __init__(self, config: dict, num_samples: int, seed: int = 0):
        self.cfg = AgentConfig(**config)
        self.num_samples = num_samples
        self.seed = seed
        torch.manual_seed(seed)
        # A small MLP: one thread leaves the cores to training, unless agent.learner_cpus reserves more.
        torch.set_num_threads(max(1, int(self.cfg.learner_cpus)))
        self.learner_group = None  # built at the first publish, when the observation size is known
        self.obs_size: int | None = None
        # Import RLlib now, while the training workers start, rather than stalling the first batch.
        import ray.rllib.algorithms.ppo  # noqa: F401
        self.version = 0  # weight version: +1 per PPO update
        self.published: tuple[int, dict] | None = None
        self.buffer = TrajectoryBuffer()
        self.replay: dict[int, tuple] = {}  # each panel sample's latest (obs, action, reward): <= panel_size
        self.reward_std = running_stat()
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []  # learner=regression: (obs, target) not fitted yet
        self.regression_optimizer: torch.optim.Optimizer | None = None
        self._reset_metrics()

    def _reset_metrics(self) -> None:
        self.busy_s = 0.0
        self.received = 0
        self.dropped = 0
        self.nonfinite_dropped = 0
        self.max_lag = 0  # weight versions between the acting copy and this learner, at arrival
        self.last_update: dict[str, float] = {}

    def _ensure_built(self, obs_size: int) -> None:
        if self.learner_group is None:
            self.learner_group = build_learner_group(self.cfg, obs_size, self.seed)
            self.obs_size = obs_size
        elif obs_size != self.obs_size:
            raise ValueError(f"the agent was built for {self.obs_size}-d states, a worker sent {obs_size}-d")

    @property
    def module(self):
        return self.learner_group._learner.module[MODULE_ID]  # the local learner's live module

    # --- the EnvRunner-facing side -------------------------------------------------------------
    def publish(self, known_version: int, obs_size: int):
        """The inference-only weights, if newer than `known_version` (else None): (version, state)."""
        self._ensure_built(obs_size)
        if known_version == self.version:
            return None
        if self.published is None or self.published[0] != self.version:
            self.published = (self.version, self.module.get_state(inference_only=True))
        return self.published

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions and distribution inputs of the learner's own module (what a synced copy must match)."""
        self._ensure_built(obs.shape[1])
        actions, _, logits = policy_act(self.module, torch.as_tensor(np.asarray(obs, np.float32)))
        return actions.numpy(), logits.numpy()

    def observe(self, epoch: int, ids, obs, actions, logp, dist_inputs, rewards, params, version: int = 0,
                dropped: int = 0):
        """A worker's panel transitions, with each one's payoff parameter (rewards.payoff_param).
        Answers as `publish` does for the version the worker acted with: the weights, if newer."""
        start = time.perf_counter()
        obs = np.array(obs, np.float32)  # a copy: what Ray hands over is read-only, torch wants to own it
        self._ensure_built(obs.shape[1])
        params = np.asarray(params, np.float32)
        dist_inputs = np.array(dist_inputs, np.float32)
        rewards = np.asarray(rewards, np.float32)
        if self.cfg.reward_scale == "per_sample":
            push_batch(self.reward_std, rewards)  # the spread of per-sample rewards, not of batch means
        scale = max(population_std(self.reward_std), 1e-8) if self.cfg.reward_scale == "per_sample" else 1.0
        rewards = rewards / scale
        regression = self.cfg.learner == "regression"
        values = None if regression else self._baseline_values(obs, dist_inputs, params, np.float32(scale))
        row = (np.asarray(ids, np.int64), obs, np.asarray(actions, np.float32)[:, None],
               np.asarray(logp, np.float32), dist_inputs, values, rewards)
        if regression:
            self.pending.append((obs, params))
        else:
            self.buffer.add(*row)
        if self.cfg.warm_start_passes or self.cfg.replay_passes:
            for i, sample in enumerate(row[0].tolist()):
                self.replay[sample] = (obs[i], row[2][i], rewards[i], params[i], np.float32(scale))
        self.received += len(row[0])
        self.dropped += dropped
        self.max_lag = max(self.max_lag, self.version - version)
        waiting = sum(len(o) for o, _ in self.pending) if regression else len(self.buffer)
        if waiting >= self.cfg.update_every:
            self._update(final=self.cfg.gamma == 0.0)  # gamma 0: every reward is complete on arrival
        self.busy_s += time.perf_counter() - start
        return self.publish(version, obs.shape[1])

    def _baseline_values(self, obs: np.ndarray, dist_inputs: np.ndarray, params: np.ndarray, scale) -> np.ndarray:
        """Each transition's baseline, in reward units divided by `scale`. critic: the learner's value
        function (the copies have none). self_critical: the payoff of the acting policy's own mean
        action (Rennie et al. 2017), exact where a critic is only fitted: an advantage is then the
        sampled action's gain over the mean action's, with none of the critic's error."""
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            if self.cfg.baseline == "critic":
                return self.module.compute_values({Columns.OBS: torch.from_numpy(obs)}).numpy()
            mean = self.module.get_train_action_dist_cls().from_logits(torch.from_numpy(dist_inputs)).mean
        return (payoff_reward(mean.squeeze(-1).numpy(), params, self.cfg.payoff) / scale).astype(np.float32)

    # --- the score store's side ----------------------------------------------------------------
    def end_epoch(self, epoch: int, final: bool) -> dict[str, float]:
        """Close an epoch: a replay fit (the warm start after the first), the last update after the final one.

        Returns the metrics since the previous call. The store does not wait for this (off the
        critical path): it logs what the call before returned.
        """
        start = time.perf_counter()
        passes = self.cfg.warm_start_passes if epoch == 0 else self.cfg.replay_passes
        if passes and self.replay and self.learner_group is not None and not final:
            self._fit_replay(passes)
        if final and self.learner_group is not None:
            self._update(final=True)
        self.busy_s += time.perf_counter() - start
        metrics = {**self.last_update, "agent_learner_time_s": self.busy_s, "agent_transitions": float(self.received),
                   "agent_dropped_transitions": float(self.dropped),
                   "agent_nonfinite_dropped": float(self.nonfinite_dropped), "agent_weight_lag_max": float(self.max_lag),
                   "agent_weight_version": float(self.version)}
        self._reset_metrics()
        return metrics

    def _fit_replay(self, passes: int) -> None:
        """`passes` PPO updates on every panel sample's latest transition, each re-evaluating them under
        the current policy (so PPO's clip does not stop it after one step). After the first epoch
        (`warm_start_passes`) this fits the policy to a full epoch of rewards before it selects; after
        later ones (`replay_passes`) it keeps the samples that selection left out in the fit, which
        the updates on the samples trained on would otherwise make it forget."""
        from ray.rllib.core.columns import Columns

        obs, actions, rewards, params, scales = (np.stack(p) for p in zip(*self.replay.values()))
        if self.cfg.learner == "regression":
            self._regress(obs, params, passes)
            return
        ids = np.fromiter(self.replay, np.int64, len(self.replay))
        actions = actions.reshape(len(ids), -1)
        for _ in range(passes):
            with torch.no_grad():
                logits = self.module.forward_train({Columns.OBS: torch.from_numpy(obs)})[Columns.ACTION_DIST_INPUTS]
            logp = self.module.get_train_action_dist_cls().from_logits(logits).logp(torch.from_numpy(actions)).numpy()
            values = self._baseline_values(obs, logits.numpy(), params, scales)
            adv = rewards - values  # one step: the reward is immediate
            self._ppo(TrainBatch(ids, obs, actions, logp, logits.numpy(), adv, rewards), num_epochs=1)

    def _update(self, final: bool) -> None:
        if self.cfg.learner == "regression":
            if self.pending:
                obs, targets = (np.concatenate(p) for p in zip(*self.pending))
                self.pending = []
                self._regress(obs, targets, self.cfg.num_epochs)
            return
        batch = self.buffer.take(self.cfg.gamma, self.cfg.gae_lambda, final)
        if batch is not None and len(batch) > 1:
            self._ppo(batch, self.cfg.num_epochs)

    def _finite(self, batch: TrainBatch) -> TrainBatch:
        """Drop transitions with a non-finite state, action log-prob, advantage or target (counted in
        `agent_nonfinite_dropped` and logged): one would make the whole update's gradients NaN."""
        ok = (np.isfinite(batch.obs).all(1) & np.isfinite(batch.logp) & np.isfinite(batch.advantages)
              & np.isfinite(batch.value_targets) & np.isfinite(batch.dist_inputs).all(1))
        if ok.all():
            return batch
        bad = {name: int((~np.isfinite(getattr(batch, name).reshape(len(batch), -1))).any(1).sum())
               for name in ("obs", "logp", "advantages", "value_targets", "dist_inputs")}
        self.nonfinite_dropped += int((~ok).sum())
        log.warning("Data Agent: dropped %d of %d transitions with non-finite values %s",
                    int((~ok).sum()), len(batch), {k: v for k, v in bad.items() if v})
        return TrainBatch(*(getattr(batch, f.name)[ok] for f in dataclasses.fields(TrainBatch)))

    def _ppo(self, batch: TrainBatch, num_epochs: int) -> None:
        """One RLlib PPO Learner update; the weight version moves on."""
        from ray.rllib.core.columns import Columns
        from ray.rllib.evaluation.postprocessing import Postprocessing
        from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
        from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

        start = time.perf_counter()
        batch = self._finite(batch)
        if len(batch) < 2:
            return
        adv = batch.advantages
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # per-sample advantages, normalised
        sample_batch = SampleBatch({
            Columns.OBS: batch.obs, Columns.ACTIONS: batch.actions.astype(np.float32),
            Columns.ACTION_LOGP: batch.logp.astype(np.float32),
            Columns.ACTION_DIST_INPUTS: batch.dist_inputs.astype(np.float32),
            Postprocessing.ADVANTAGES: adv.astype(np.float32),
            Postprocessing.VALUE_TARGETS: batch.value_targets.astype(np.float32),
        })
        self.version += 1
        # LearnerGroup.update does not read num_epochs / minibatch_size from the config: pass them.
        results = self.learner_group.update(
            batch=MultiAgentBatch({MODULE_ID: sample_batch}, env_steps=len(batch)),
            num_epochs=num_epochs, minibatch_size=min(self.cfg.minibatch_size, len(batch)),
            shuffle_batch_per_epoch=True, timesteps={"num_env_steps_sampled_lifetime": self.version})
        stats = MetricsLogger.peek_results(results[0] if isinstance(results, list) else results)[MODULE_ID]
        with torch.no_grad():
            new_logits = self.module.forward_train({Columns.OBS: torch.from_numpy(batch.obs)})[Columns.ACTION_DIST_INPUTS]
        beta = self.module.get_train_action_dist_cls()
        new_dist = beta.from_logits(new_logits)
        old_dist = beta.from_logits(torch.as_tensor(batch.dist_inputs))
        self.last_update = {
            "agent_policy_loss": float(stats["policy_loss"]),
            "agent_entropy": float(new_dist.entropy().mean()),
            "agent_kl": float(old_dist.kl(new_dist).mean()),  # KL(acting || updated) over the batch
            "agent_update_transitions": float(len(batch)),
            "agent_advantage_std": float(batch.advantages.std()),
            "agent_update_time_s": time.perf_counter() - start,
        }
        if self.cfg.baseline == "critic":  # the value function is trained only where it is the baseline
            self.last_update.update(agent_value_loss=float(stats["vf_loss"]),
                                    agent_vf_explained_var=float(stats["vf_explained_var"]))

    def _regress(self, obs: np.ndarray, targets: np.ndarray, num_epochs: int) -> None:
        """learner=regression, the ablation of PPO: least squares of the policy mean on each transition's
        rank target y (its payoff parameter), same state, minibatches and learning rate, with Adam. What
        PPO adds over this is credit for the sampled action, i.e. exploration."""
        from ray.rllib.core.columns import Columns

        start = time.perf_counter()
        ok = np.isfinite(obs).all(1) & np.isfinite(targets)
        self.nonfinite_dropped += int((~ok).sum())
        obs, targets = torch.from_numpy(obs[ok]), torch.from_numpy(targets[ok].astype(np.float32))
        if len(obs) < 2:
            return
        if self.regression_optimizer is None:
            self.regression_optimizer = torch.optim.Adam(self.module.parameters(), lr=self.cfg.lr)
        dist = self.module.get_train_action_dist_cls()
        losses = []
        for _ in range(num_epochs):
            for idx in torch.randperm(len(obs)).split(self.cfg.minibatch_size):
                logits = self.module.forward_train({Columns.OBS: obs[idx]})[Columns.ACTION_DIST_INPUTS]
                loss = ((dist.from_logits(logits).mean.squeeze(-1) - targets[idx]) ** 2).mean()
                self.regression_optimizer.zero_grad()
                loss.backward()
                self.regression_optimizer.step()
                losses.append(loss.item())
        self.version += 1
        self.last_update = {"agent_regression_loss": float(np.mean(losses)),
                            "agent_update_transitions": float(len(obs)),
                            "agent_update_time_s": time.perf_counter() - start}

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "learner": None if self.learner_group is None else self.learner_group.get_state(),
            "obs_size": self.obs_size, "version": self.version, "buffer": self.buffer.state_dict(),
            "replay": self.replay, "reward_std": self.reward_std.to_state(), "pending": list(self.pending),
            "regression_optimizer": None if self.regression_optimizer is None else self.regression_optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),  # the actions it samples next
            "numpy_rng": np.random.get_state(),  # RLlib's minibatch shuffles (SampleBatch.shuffle)
        }

    def load_state(self, state: dict) -> None:
        """Also a roll-back (after a training worker failure): what arrived since the state was taken goes."""
        if state["obs_size"] is None:  # the state before the first batch
            self.learner_group, self.obs_size = None, None
        else:
            self._ensure_built(state["obs_size"])
            self.learner_group.set_state(state["learner"])
        self.version = state["version"]
        self.published = None
        self.buffer.load_state_dict(state["buffer"])
        self.replay = dict(state["replay"])
        self.pending = list(state.get("pending", []))
        self.regression_optimizer = None
        if state.get("regression_optimizer") is not None:
            self.regression_optimizer = torch.optim.Adam(self.module.parameters(), lr=self.cfg.lr)
            self.regression_optimizer.load_state_dict(state["regression_optimizer"])
        self.reward_std = type(self.reward_std).from_state(state["reward_std"])
        self._reset_metrics()
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        if "numpy_rng" in state:
            np.random.set_state(state["numpy_rng"])


def start_agent(cfg, num_samples: int, name: str | None = None):
    """Start the DataAgent actor with `agent.learner_cpus` reserved. The default, 0, suits a small
    cluster (its work is small and bursty; a reservation could starve the training workers); on a
    busy real cluster reserve 1 so the learner is not starved behind the trainers."""
    import ray

    # If it dies, Ray restarts it empty; the training workers' restart rolls it back to the checkpoint.
    return ray.remote(DataAgent).options(num_cpus=cfg.agent.learner_cpus, max_restarts=3, name=name).remote(
        cfg.agent.model_dump(), num_samples, cfg.train.seed)
