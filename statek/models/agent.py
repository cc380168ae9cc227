"""Agents: who does the work (role, prompt, tools, model choice, warmup)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dbzero as db0

from statek.models.code_analysis import JOB_BUILTINS, checked_blocks, external_names
from statek.models.root import root_for
from statek.models.storable import check_storable_mapping
from statek.store import requires_prefix, transition
from statek.tools import tool_name_of


@requires_prefix
@db0.memo(id="statek/Agent")
class Agent:
    """A role the model plays. Persisted; `db0.find(Agent)` lists them."""

    def __init__(
        self,
        role: str,
        system_prompt: str = "",
        tools: Sequence[Callable[..., Any] | str] = (),
        metadata: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(role, str) or not role:
            raise ValueError("Agent role must be a non-empty str")
        meta = dict(metadata or {})
        check_storable_mapping(meta, f"Agent({role!r}).metadata")
        self.role = role
        self.system_prompt = system_prompt
        self.tool_names = tuple(tool_name_of(t) for t in tools)
        self.metadata = meta
        self.description = description
        self.created_at = time.time()
        self.warmup_blocks: tuple[str, ...] = ()
        self.warmup_externals: tuple[str, ...] = ()
        root_for().agents.append(db0.materialized(self))

    @property
    def tools(self) -> tuple[str, ...]:
        return tuple(self.tool_names)

    def set_system_prompt(self, text: str) -> None:
        self.system_prompt = text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.role!r} {db0.uuid(self)}>"


@requires_prefix
@db0.memo(id="statek/SupervisedAgent")
class SupervisedAgent(Agent):
    """An agent whose jobs start from queued events, each bound to its warmup's one input."""

    def update_warmup_def(self, code: str | Sequence[str] | None) -> None:
        """Replace the warmup; re-derive which outside locals it reads."""
        blocks = checked_blocks(code)
        with transition():
            self.warmup_blocks = blocks
            self.warmup_externals = external_names(blocks, (*JOB_BUILTINS, *self.tool_names))

    @property
    def warmup_code(self) -> str:
        return "\n# %%\n".join(self.warmup_blocks)

    @property
    def external_locals(self) -> tuple[str, ...]:
        return tuple(self.warmup_externals)
