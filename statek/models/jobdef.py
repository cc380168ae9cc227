"""Job definitions: what a job runs (agent, model choice, warmup blocks, parameters).

Jobs of the same agent with the same warmup, metadata and parameters share one JobDef: a
fleet of 100k identical jobs stores its warmup once and compiles it once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dbzero as db0

from statek import worker_state
from statek.models.code_analysis import checked_blocks
from statek.models.containers import SEQUENCE_KINDS, container_kind
from statek.models.root import root_for
from statek.models.storable import check_storable_mapping

MAX_ERROR_RECORDS = 100


def _canonical(value: Any) -> str:
    """A stable text form of a storable value (dict order does not matter)."""
    if isinstance(value, Mapping) or container_kind(value) == "Dict":
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, list | tuple) or container_kind(value) in SEQUENCE_KINDS:
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if db0.is_memo(value):
        return f"@{db0.uuid(value)}"
    return f"{type(value).__name__}:{value!r}"


def definition_key(agent: Any, blocks: Sequence[str], metadata: Mapping[str, Any],
                   params: Mapping[str, Any]) -> str:
    text = "\x1e".join((db0.uuid(agent), *blocks, _canonical(metadata), _canonical(params)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@db0.memo(id="statek/JobDef")
class JobDef:
    def __init__(self, key: str, agent: Any, blocks: tuple[str, ...],
                 metadata: dict[str, Any], params: dict[str, Any]) -> None:
        self.key = key
        self.agent = agent
        self.warmup_blocks = blocks
        self.metadata = metadata
        self.params = params
        self.created_at = time.time()
        self.errors = db0.list()

    @property
    def model_spec(self) -> str | None:
        """`MODEL` from the metadata (`provider/model`), if any."""
        value = self.metadata.get("MODEL")
        return str(value) if value is not None else None

    def record_error(self, kind: str, message: str, **details: Any) -> None:
        """Keep the last MAX_ERROR_RECORDS failures of jobs of this definition."""
        if len(self.errors) >= MAX_ERROR_RECORDS:
            del self.errors[0]
        self.errors.append({"at": time.time(), "kind": kind, "message": message, **details})


def get_or_create_jobdef(
    agent: Any,
    warmup_code: str | Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """The JobDef for this combination, reusing an identical one when it exists."""
    blocks = checked_blocks(warmup_code) if warmup_code is not None else tuple(agent.warmup_blocks)
    meta = {**dict(agent.metadata), **dict(metadata or {})}
    prm = dict(params or {})
    check_storable_mapping(meta, "job metadata")
    check_storable_mapping(prm, "job_params")
    key = definition_key(agent, blocks, meta, prm)
    root = root_for()
    prefix = db0.get_current_prefix().name
    cache = worker_state.current().jobdefs  # (prefix, key) -> JobDef
    found = cache.get((prefix, key))
    if found is not None and db0.exists(db0.uuid(found)):
        return found
    found = root.jobdefs.get(key)
    if found is None:
        found = JobDef(key, agent, blocks, meta, prm)
        root.jobdefs[key] = found
    cache[(prefix, key)] = found
    return found
