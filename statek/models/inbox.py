"""The stored form of a job's inbox: the messages delivered to it, in order.

A drain that re-opens a thousand finished jobs gives each its first inbox, and a new dbzero
list there was the largest single cost of a delivery (docs/costs.md C33), while one short
string costs a few µs to store. So a job's first messages, while they are scalars, are kept
as one JSON string, the head, and the messages after it in a dbzero list, the tail:

* `Job.inbox` None: no message was ever delivered;
* `Job.inbox` a `str`: the JSON array of the first messages (at most `MAX_HEAD_CHARS` of
  JSON; each a str, an int of 64 bits, a finite float, a bool or None: values JSON gives
  back unchanged and of the same type; a dict would come back a plain dict where a dbzero
  list gives a dbzero one, so containers are never packed); later ones are in
  `Job.inbox_more`;
* `Job.inbox` a dbzero list: the whole inbox (the first delivery could not be packed, or an
  earlier version of statek stored it).

Each delivery appends to the head until one does not fit; from then on deliveries extend
the tail and the head is never written again. Nothing is stored twice. The functions below
are the only readers and writers of these two attributes.
"""

from __future__ import annotations

from typing import Any

from statek import _json
from statek.models.fifo_pack import is_plain_json, json_text

#: The head's length at most, in characters: it is read, and decoded, by every read of the
#: inbox, and written again by every delivery while it grows; bounding its size, not its
#: count, lets a delivery append to it without decoding it.
MAX_HEAD_CHARS = 1024


def deliver(job: Any, messages: list[Any], receiving: Any = None) -> Any:
    """Append `messages` to `job`'s inbox. `receiving` is what the previous call for this
    job returned, if the caller kept it: the dbzero list that took those messages, which
    takes these too without a read (~10 µs saved per job). Returns the list that took
    them, or None when the head did (a string is read again)."""
    if not messages:
        return receiving
    if receiving is None:
        head = job.inbox
        if head is not None and type(head) is not str:
            receiving = head
        else:
            receiving = None if head is None else job.inbox_more
            if receiving is None:
                return _start(job, head, messages)
    receiving.extend(messages)
    return receiving


def _start(job: Any, head: str | None, messages: list[Any]) -> Any:
    """A delivery to an inbox that is empty or only a head."""
    text = _packed(messages)
    if text is not None and head is not None:
        text = f"{head[:-1]},{text[1:]}"  # two JSON arrays joined, neither decoded
    if text is not None and len(text) <= MAX_HEAD_CHARS:
        job.inbox = text
        return None
    if head is None:
        job.inbox = list(messages)
        return job.inbox
    job.inbox_more = list(messages)
    return job.inbox_more


def _packed(messages: list[Any]) -> str | None:
    """The JSON array of `messages` when they are all scalars JSON keeps as they are."""
    return json_text(messages) if _all_scalars(messages) else None


def count(job: Any) -> int:
    """How many messages were ever delivered."""
    head = job.inbox
    if head is None:
        return 0
    if type(head) is not str:
        return len(head)
    more = job.inbox_more
    return len(_json.loads(head)) + (0 if more is None else len(more))


def messages_from(job: Any, start: int) -> list[Any]:
    """The messages delivered from position `start` on, in order."""
    return _from(job, job.inbox, start)


def unread(job: Any, head: Any) -> list[Any]:
    """The messages not taken yet (from `Job.inbox_read` on), in order; `head` is
    `job.inbox`, which the caller read (a prompt is built for every model call, most of
    them for jobs without messages: the caller skips this call when it is None)."""
    return _from(job, head, int(job.inbox_read))


def _from(job: Any, head: Any, start: int) -> list[Any]:
    if head is None:
        return []
    if type(head) is not str:
        return list(head[start:])
    first: list[Any] = _json.loads(head)
    more = job.inbox_more
    found = first[start:]
    if more is not None:
        found.extend(more[max(0, start - len(first)):])
    return found


def message_at(job: Any, index: int) -> Any:
    """The message at position `index` (IndexError past the last)."""
    head = job.inbox
    if head is None:
        raise IndexError(f"no message {index}: the inbox is empty")
    if type(head) is not str:
        return head[index]
    first = _json.loads(head)
    if index < len(first):
        return first[index]
    more = job.inbox_more
    if more is None:
        raise IndexError(f"no message {index}: {len(first)} delivered")
    return more[index - len(first)]


def _all_scalars(values: list[Any]) -> bool:
    """Whether every value is a scalar JSON gives back unchanged (`fifo_pack` says which)."""
    for value in values:
        kind = type(value)
        if kind is str:  # most messages: no call
            continue
        if kind is list or kind is dict or not is_plain_json(value):
            return False
    return True
