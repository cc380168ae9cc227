"""Agent classes (import path kept for users of the documented API)."""

from statek.agents.agent import Agent, SupervisedAgent

__all__ = ["Agent", "SupervisedAgent"]
