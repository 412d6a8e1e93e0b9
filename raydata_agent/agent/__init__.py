"""The Data Agent: an RLlib PPO policy, in a Ray actor, that learns per-sample selection weights."""
from raydata_agent.agent.data_agent import DataAgent, start_agent

__all__ = ["DataAgent", "start_agent"]
