"""The stored form of a job's earlier outcomes (`Job.past_results`), kept cheap to re-open.

A message to a finished job re-opens it and keeps what it had finished with. W4 re-opens a
thousand finished jobs in one drain, and the first outcome stored as a new dbzero list of one
tuple cost ~21 µs there, against ~4 µs for one short string (docs/costs.md C32). So outcomes
of plain JSON values (a str or number exit status, the usual case) are kept as one JSON
string while there are few of them. The stored value is one of

* None: the job was never re-opened;
* a `str`: the JSON array of `[exit_status, error, finished_at, reopened_at]` arrays, at most
  `MAX_PACKED` of them;
* a dbzero list of tuples (dicts from earlier versions): outcomes holding a value JSON would
  change (a container, a date, a memo reference), or more than `MAX_PACKED`. It only grows
  from there, so no outcome is re-encoded more than `MAX_PACKED` times.
"""

from __future__ import annotations

from typing import Any

from statek import _json
from statek.models.fifo_pack import is_plain_json, json_text

#: Outcomes kept in the string form; one more moves them all to a list (rewriting a growing
#: string on every re-open would cost a job re-opened n times O(n²)).
MAX_PACKED = 16

Outcome = tuple[Any, Any, Any, Any]  # exit_status, error, finished_at, reopened_at


def appended(past: Any, outcome: Outcome) -> Any:
    """The stored value to assign after adding `outcome`, or None when `past` (a dbzero
    list) took it in place."""
    if past is None:
        return _packed([outcome]) or [outcome]
    if type(past) is str:
        outcomes = [*decoded(past), outcome]
        return (len(outcomes) <= MAX_PACKED and _packed(outcomes)) or outcomes
    past.append(outcome)
    return None


def decoded(past: Any) -> list[Any]:
    """The stored outcomes, oldest first: tuples, or dicts stored by earlier versions."""
    if past is None:
        return []
    if type(past) is str:
        return [tuple(entry) for entry in _json.loads(past)]
    return list(past)


def _packed(outcomes: list[Outcome]) -> str | None:
    """The string form of `outcomes`, or None when one of them holds a value JSON would not
    give back unchanged."""
    if not all(is_plain_json(value) for outcome in outcomes for value in outcome):
        return None
    return json_text(outcomes)
