"""`statek.agents`: the documented package of the agent classes; it only re-exports."""

from statek.agents.agent import Agent, SupervisedAgent

__all__ = ["Agent", "SupervisedAgent"]
