"""The Data Agent (arXiv 2603.07433): a PPO policy, learned during training, sets each sample's weight.

The policy acts in the training workers (agent/acting.py) and learns in the `DataAgent` actor
(agent/data_agent.py). This selector is the pool-side glue, and waits for the learner only when it is
an epoch behind:
- a sample's selection weight is its latest *sampled* action, kept in the pool's weight column as
  it arrives, so selection re-scores nothing and the action really decides selection (exploration);
- each plan ships the selected samples' history (label agreement, staleness) to the workers, for
  the agent's state, and the quantiles of every seen sample's latest reward target, which the
  payoff compares each new target to (its percentile, or the (1 - ratio) cut);
- the budget is split across classes (`agent.class_balanced`), so the policy cannot starve a class;
- every selected sample's loss weighs 1/ratio (`selection.loss_weighting=auto`), as in the paper's
  reference code: a selection epoch moves the model about as far as a full one, at its cost;
- after the first (full) epoch, every action so far came from a policy still learning: the first
  selection takes the reward target's ranking instead (what the warm start fits the policy to).
"""
from __future__ import annotations

import numpy as np

from raydata_agent.agent.calls import Done, call, fetch
from raydata_agent.agent.rewards import QUANTILE_LEVELS
from raydata_agent.agent.state import CONTEXT_COLUMNS
from raydata_agent.config import AgentConfig
from raydata_agent.pool import NEVER
from raydata_agent.selectors.base import Selector, group_rows


class DataAgentSelector(Selector):
    name = "data_agent"
    needs_features = True  # the workers act on them; they never reach the store
    auto_loss_weighting = "inverse_ratio"  # the paper's reference: 1/ratio on every selected sample

    def __init__(self, cfg, num_samples, total_epochs, seed=0, agent=None, agent_cfg=None):
        super().__init__(cfg, num_samples, total_epochs, seed)
        if agent is None:
            raise ValueError("the data_agent selector needs a DataAgent (see agent.start_agent)")
        self.agent = agent
        self.agent_cfg = agent_cfg or AgentConfig()
        self.target = np.zeros(num_samples, np.float32)  # each sample's latest reward target
        self.pending_metrics = None  # the end_epoch call of the previous epoch
        self.groups = None  # group_rows(labels), once: labels never change

    def weights(self, pool, epoch):
        return np.where(pool.seen, pool.weight, 1.0).astype(np.float32)

    def choose(self, pool, epoch, k):
        if self.agent_cfg.class_balanced and self.groups is None:
            self.groups = group_rows(pool.label)
        return self.take_by_weight(pool, epoch, k, groups=self.groups if self.agent_cfg.class_balanced else None)

    def annotate(self, pool, epoch, selection):
        """Per selected sample: label agreement, epochs since its last visit (a fraction of the run),
        seen before; and where the pool's latest reward targets lie, which the payoff compares to."""
        ids = selection.ids
        last = pool.last_epoch_seen[ids]
        seen = last != NEVER
        staleness = np.where(seen, epoch - last, epoch + 1) / max(self.total_epochs, 1)
        selection.context = np.stack([pool.agreement[ids], staleness, seen], axis=1).astype(np.float32)
        assert selection.context.shape[1] == len(CONTEXT_COLUMNS)
        if pool.seen.any():
            seen_targets = self.target[pool.seen]
            selection.baseline = float(np.quantile(seen_targets, 1.0 - self.cfg.ratio))
            selection.target_quantiles = np.quantile(seen_targets, QUANTILE_LEVELS).astype(np.float32)

    def observe(self, epoch, ids, features, score, acted=None):
        if acted is None:
            raise ValueError("data_agent records need the worker's actions (acted=...); see agent/acting.py")
        self.target[ids] = acted["target"]
        return np.asarray(acted["action"], np.float32) * np.asarray(score, np.float32)  # eq. 6: r = a * score

    def update(self, pool, epoch):
        """Tell the learner the epoch ended, and report its answer.
        agent.schedule=deterministic waits for this epoch's answer: the next epoch's first weights must be
        the ones fitted here, and the workers ask for them only after this returns. async reports the
        answer for the epoch before (one epoch late, so selection never waits for this epoch's fit; it
        waits only when the learner is an epoch behind). After the last epoch both wait for the final fit."""
        final = epoch == self.total_epochs - 1
        ref = call(self.agent, "end_epoch", epoch, final)
        previous, self.pending_metrics = self.pending_metrics, None
        metrics = {} if previous is None else fetch(previous)
        if final or self.agent_cfg.schedule == "deterministic":
            metrics = combined_answers(metrics, fetch(ref))
        else:
            self.pending_metrics = ref
        if epoch == 0 and self.agent_cfg.warm_start_passes and pool.seen.any():
            target = self.target[pool.seen]
            ranks = np.empty(len(target), np.float32)
            ranks[np.argsort(target, kind="stable")] = np.arange(len(target))
            pool.weight[pool.seen] = (ranks + 0.5) / len(target)  # each target's percentile: rank's best action
        return metrics

    def state_dict(self):
        agent = fetch(call(self.agent, "state"))  # the actor answers in order: the pending answer is in by now
        pending = {} if self.pending_metrics is None else fetch(self.pending_metrics)
        return {**super().state_dict(), "agent": agent, "target": self.target, "pending_metrics": pending}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        fetch(call(self.agent, "load_state", state["agent"]))
        self.target = np.asarray(state["target"], np.float32)
        # The learner's answer the next epoch reports (update() logs the previous epoch's): without it the
        # first epoch after a restart or resume had no agent_* metrics.
        self.pending_metrics = Done(state.get("pending_metrics") or {})


COUNTED = ("agent_learner_time_s", "agent_transitions", "agent_dropped_transitions", "agent_nonfinite_dropped")


def combined_answers(older: dict, newer: dict) -> dict:
    """Two learner answers in one epoch's row (the last): the newer's figures, both answers' counts."""
    row = {**older, **newer}
    for key in COUNTED:
        row[key] = older.get(key, 0.0) + newer.get(key, 0.0)
    row["agent_weight_lag_max"] = max(older.get("agent_weight_lag_max", 0.0), newer.get("agent_weight_lag_max", 0.0))
    return row
