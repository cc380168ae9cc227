"""`statek.statek_push_queue`: the documented import path of StatekPushQueue; it only re-exports."""

from statek.models.push_queue import StatekPushQueue

__all__ = ["StatekPushQueue"]
