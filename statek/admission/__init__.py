"""Admission control for model calls: shared rate limits per (provider, model, API key).

`limiter_for` finds the limiter a call must pass (None when none applies), `admitted_call`
runs a call through it. See README "Rate limits and budgets".
"""

from statek.admission.call import admitted_call, call_order
from statek.admission.estimate import estimate_tokens
from statek.admission.limiter import Limiter, Limits, Reservation
from statek.admission.registry import active, limiter_for, reset

__all__ = [
    "Limiter",
    "Limits",
    "Reservation",
    "active",
    "admitted_call",
    "call_order",
    "estimate_tokens",
    "limiter_for",
    "reset",
]
