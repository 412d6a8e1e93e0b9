"""`DataAgent`: the Ray actor that owns the selection policy and learns it with RLlib's PPO.

The policy is an RLModule trained by RLlib's PPO Learner through a LearnerGroup built from a
PPOConfig; there is no environment and no EnvRunner. The training run is the environment: the
score store hands us each batch's features (state), we answer with Beta actions (selection
weights), and the rewards come back with the same batch. Advantages come from our own per-sample
GAE (trajectories.py), so the batch we give the Learner already holds them: RLlib's GAE connector
works on episodes, which we do not have, and is left out of the learner pipeline.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from raydata_agent.agent.trajectories import TrajectoryBuffer
from raydata_agent.config import AgentConfig

MODULE_ID = "default_policy"  # ray.rllib.core.DEFAULT_MODULE_ID


class RunningStd:
    """Running standard deviation of per-sample rewards (Welford), for reward scaling."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64)
        n = len(values)
        if n == 0:
            return
        delta = values.mean() - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += values.var() * n + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count > 1 else 1.0


def build_learner_group(cfg: AgentConfig, feature_dim: int, seed: int):
    import gymnasium as gym
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from raydata_agent.agent.rl_module import DataAgentModule

    obs_space = gym.spaces.Box(-np.inf, np.inf, (feature_dim,), np.float32)  # 1-D: the default catalog's kind
    act_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
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
                  entropy_coeff=cfg.entropy_coeff, use_kl_loss=False, vf_clip_param=float("inf"))
        .rl_module(rl_module_spec=RLModuleSpec(module_class=DataAgentModule, observation_space=obs_space,
                                               action_space=act_space, model_config={"hidden": cfg.hidden}))
    )
    return config.build_learner_group()


class DataAgent:
    """act / observe / update / state / load_state, called by the score store (one caller, in order)."""

    def __init__(self, config: dict, num_samples: int, seed: int = 0):
        self.cfg = AgentConfig(**config)
        self.num_samples = num_samples
        self.seed = seed
        torch.manual_seed(seed)
        torch.set_num_threads(1)  # a small MLP: one thread leaves the cores to training
        self.learner_group = None  # built at the first batch, when the feature size is known
        # Import RLlib now, while the training workers start, rather than stalling the first batch.
        import ray.rllib.algorithms.ppo  # noqa: F401
        self.features: np.ndarray | None = None  # latest state of every sample: [N, d]
        self.seen = np.zeros(num_samples, bool)
        self.buffer = TrajectoryBuffer()
        self.last_act = None  # (ids, action-dist inputs, values) of the latest act(), reused by observe()
        self.reward_std = RunningStd()
        self.updates = 0
        self.busy_s = 0.0  # time spent in act / observe / update / weights since the last update

    # --- the policy --------------------------------------------------------------------------
    def _ensure_built(self, feature_dim: int) -> None:
        if self.learner_group is None:
            self.learner_group = build_learner_group(self.cfg, feature_dim, self.seed)
            self.features = np.zeros((self.num_samples, feature_dim), np.float32)

    @property
    def module(self):
        return self.learner_group._learner.module[MODULE_ID]  # the local learner's live module

    @torch.no_grad()
    def _policy(self, features: np.ndarray):
        from ray.rllib.core.columns import Columns

        from raydata_agent.agent.rl_module import TorchBeta

        obs = {Columns.OBS: torch.from_numpy(np.array(features, np.float32))}  # a writable copy
        logits = self.module.forward_exploration(obs)[Columns.ACTION_DIST_INPUTS]
        return TorchBeta.from_logits(logits), logits, self.module.compute_values(obs)

    def act(self, ids: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Sample a selection weight in (0, 1) for each sample from its features."""
        start = time.perf_counter()
        self._ensure_built(features.shape[1])
        dist, logits, values = self._policy(features)
        actions = dist.sample().squeeze(-1).numpy().astype(np.float32)
        self.last_act = (np.array(ids, np.int64), logits, values)
        self.busy_s += time.perf_counter() - start
        return actions

    def observe(self, ids: np.ndarray, features: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Record one transition per sample. No update runs between act and observe, so the
        policy outputs of the act() on these ids are those of the policy that acted: reuse them."""
        from raydata_agent.agent.rl_module import TorchBeta

        start = time.perf_counter()
        self._ensure_built(features.shape[1])
        if self.last_act is not None and np.array_equal(self.last_act[0], ids):
            _, logits, values = self.last_act
            dist = TorchBeta.from_logits(logits)
        else:  # observe without a matching act (e.g. actions chosen elsewhere): run the policy
            dist, logits, values = self._policy(features)
        self.last_act = None
        act = torch.as_tensor(actions, dtype=torch.float32).unsqueeze(-1)
        rewards = np.asarray(rewards, np.float32)
        if self.cfg.reward_scale == "per_sample":
            self.reward_std.update(rewards)  # the spread of per-sample rewards, not of batch means
            rewards = rewards / max(self.reward_std.std, 1e-8)
        self.buffer.add(np.asarray(ids, np.int64), features.astype(np.float32), act.numpy(),
                        dist.logp(act).numpy(), logits.numpy(), values.numpy(), rewards)
        self.features[ids] = features
        self.seen[ids] = True
        self.busy_s += time.perf_counter() - start

    def weights(self) -> np.ndarray:
        """The current policy's mean action for every sample, from its latest features.

        The policy generalises across samples, so samples not trained on lately are re-scored too;
        samples never seen keep weight 1 and are selected first.
        """
        start = time.perf_counter()
        out = np.ones(self.num_samples, np.float32)
        if self.learner_group is not None and self.seen.any():
            idx = np.flatnonzero(self.seen)
            for chunk in np.array_split(idx, max(1, len(idx) // 65536)):
                dist, _, _ = self._policy(self.features[chunk])
                out[chunk] = dist.mean.squeeze(-1).numpy()
        self.busy_s += time.perf_counter() - start
        return out

    def update(self, final: bool = False) -> dict[str, float]:
        """One PPO update on every transition whose successor is known (all of them if `final`)."""
        from ray.rllib.core.columns import Columns
        from ray.rllib.evaluation.postprocessing import Postprocessing
        from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
        from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

        from raydata_agent.agent.rl_module import TorchBeta

        start = time.perf_counter()
        batch = self.buffer.take(self.cfg.gamma, self.cfg.gae_lambda, final)
        metrics: dict[str, float] = {}
        if batch is not None and len(batch) > 1:
            adv = batch.advantages
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # per-sample advantages, normalised
            sample_batch = SampleBatch({
                Columns.OBS: batch.obs, Columns.ACTIONS: batch.actions.astype(np.float32),
                Columns.ACTION_LOGP: batch.logp.astype(np.float32),
                Columns.ACTION_DIST_INPUTS: batch.dist_inputs.astype(np.float32),
                Postprocessing.ADVANTAGES: adv.astype(np.float32),
                Postprocessing.VALUE_TARGETS: batch.value_targets.astype(np.float32),
            })
            self.updates += 1
            # LearnerGroup.update does not read num_epochs / minibatch_size from the config: pass them.
            results = self.learner_group.update(
                batch=MultiAgentBatch({MODULE_ID: sample_batch}, env_steps=len(batch)),
                num_epochs=self.cfg.num_epochs, minibatch_size=min(self.cfg.minibatch_size, len(batch)),
                shuffle_batch_per_epoch=True, timesteps={"num_env_steps_sampled_lifetime": self.updates})
            stats = MetricsLogger.peek_results(results[0] if isinstance(results, list) else results)[MODULE_ID]
            new_dist, _, _ = self._policy(batch.obs)
            old_dist = TorchBeta.from_logits(torch.as_tensor(batch.dist_inputs))
            metrics = {
                "agent_policy_loss": float(stats["policy_loss"]),
                "agent_value_loss": float(stats["vf_loss"]),
                "agent_entropy": float(new_dist.entropy().mean()),
                "agent_kl": float(old_dist.kl(new_dist).mean()),  # KL(old || new) over the whole batch
                "agent_vf_explained_var": float(stats["vf_explained_var"]),
                "agent_transitions": float(len(batch)),
                "agent_advantage_std": float(batch.advantages.std()),
            }
        metrics["agent_update_time_s"] = time.perf_counter() - start
        self.busy_s += metrics["agent_update_time_s"]
        metrics["agent_time_s"] = self.busy_s
        self.busy_s = 0.0
        return metrics

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "learner": None if self.learner_group is None else self.learner_group.get_state(),
            "feature_dim": None if self.features is None else self.features.shape[1],
            "features": self.features, "seen": self.seen, "buffer": self.buffer.state_dict(),
            "reward_std": vars(self.reward_std).copy(), "updates": self.updates,
        }

    def load_state(self, state: dict) -> None:
        if state["feature_dim"] is not None:
            self._ensure_built(state["feature_dim"])
            self.learner_group.set_state(state["learner"])
            self.features = np.asarray(state["features"], np.float32)
        self.seen = np.asarray(state["seen"], bool)
        self.buffer.load_state_dict(state["buffer"])
        vars(self.reward_std).update(state["reward_std"])
        self.updates = state["updates"]


def start_agent(cfg, num_samples: int):
    """Start the DataAgent actor. It takes no CPU reservation: its work is small and bursty,
    and a reservation could starve the training workers on a small cluster."""
    import ray

    return ray.remote(DataAgent).options(num_cpus=0).remote(
        {k: getattr(cfg.agent, k) for k in AgentConfig.__dataclass_fields__}, num_samples, cfg.train.seed)
