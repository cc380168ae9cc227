"""`statek.agents.agent`: the documented import path of the agent classes; it only re-exports."""

from statek.models.agent import Agent, SupervisedAgent

__all__ = ["Agent", "SupervisedAgent"]
