"""A reply function for `ScriptedProvider` that plays a script in order: a string is the
model's reply, an exception is raised as the provider's failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def answers_in_order(script: Sequence[str | BaseException]) -> Callable[[Any], str]:
    left = list(script)

    def reply(request: Any) -> str:
        item = left.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return reply
