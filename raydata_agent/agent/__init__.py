"""The Data Agent: an RLlib PPO policy, in a Ray actor, that learns per-sample selection weights.

One concept per module, from the bottom up: `spaces` (the policy's spaces, id and config), `calls`
(learner calls that work on an actor or in process), `state` (the observation), `rewards` (what an
action earns), `rl_module` (the Beta RLModule), `policy` (building and sampling it), `trajectories`
(per-sample GAE), `acting` (a training worker's acting copy) and `data_agent` (the learner actor).
"""
from raydata_agent.agent.data_agent import DataAgent, start_agent

__all__ = ["DataAgent", "start_agent"]
