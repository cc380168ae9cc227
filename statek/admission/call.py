"""One model call under admission control: admit, send, settle; re-queue after a 429.

A job's priority and fairness key come from its definition's metadata, so no signature of
the runner or client API changes: `PRIORITY` (an int, higher first, default 0) and `TENANT`
(a string, default "": calls without one are served first come first served among
themselves). Both can be set per agent (`Agent(metadata=...)`) or per job
(`submit_new_job(agent, vars, metadata={"PRIORITY": 5, "TENANT": "acme"})`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from statek.admission.limiter import Limiter
from statek.admission.registry import active
from statek.admission.waitqueue import PRIORITY_RANGE
from statek.errors import ConfigurationError
from statek.providers import retry
from statek.providers.ratelimit import DEFER_RATE_LIMITS, RateLimitedError
from statek.providers.types import ChatReply, ChatRequest

__all__ = ["admitted_call", "call_order"]


def call_order(metadata: Mapping[str, Any]) -> tuple[int, str]:
    """(priority, fairness key) of a job's calls from its metadata; a bad value is a
    ConfigurationError naming it."""
    priority = metadata.get("PRIORITY", 0)
    if type(priority) is not int or not -PRIORITY_RANGE <= priority < PRIORITY_RANGE:
        raise ConfigurationError(f"metadata PRIORITY must be an int from {-PRIORITY_RANGE:,} "
                                 f"to {PRIORITY_RANGE - 1:,}, got {priority!r}")
    tenant = metadata.get("TENANT", "")
    if not isinstance(tenant, str):
        raise ConfigurationError(f"metadata TENANT must be a string, got {tenant!r}")
    return priority, tenant


async def admitted_call(limiter: Limiter, request: ChatRequest, metadata: Mapping[str, Any],
                        send: Callable[[], Awaitable[ChatReply]]) -> ChatReply:
    """`await send()` once `limiter` admits it; its reservation is settled against the
    reply's usage, or released if it raises. A 429 pauses the key (the provider does not
    retry it itself) and the call queues again at its old place, up to
    `rate_limit_max_refusals` times; each re-queue is a retry for the metrics
    (`retry.on_retry`, labelled "429" like a provider's own retry of one)."""
    admission = active()
    priority, tenant = call_order(metadata)
    tokens = admission.estimate(request)
    front = False
    refusals = 0
    while True:
        reservation = await limiter.acquire(tokens, priority, tenant, front)
        defer = DEFER_RATE_LIMITS.set(True)
        try:
            reply = await send()
        except RateLimitedError as exc:
            limiter.refuse(reservation, exc.rate_limits)
            refusals += 1
            if refusals > admission.max_refusals:  # the error says why it stops here
                raise RateLimitedError(
                    f"{exc} (refused {refusals} times in a row; rate_limit_max_refusals="
                    f"{admission.max_refusals}, STATEK_RATE_LIMIT_MAX_REFUSALS)",
                    rate_limits=exc.rate_limits) from exc
            listener = retry.on_retry
            if listener is not None:  # the limiter is named "<provider>/<model>"
                listener(limiter.name.partition("/")[0], "429")
            front = True
            continue
        except BaseException:
            limiter.release(reservation)
            raise
        finally:
            DEFER_RATE_LIMITS.reset(defer)
        usage = reply.usage
        limiter.settle(reservation, None if usage is None else usage.total_tokens,
                       reply.rate_limits)
        return reply
