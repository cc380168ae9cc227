"""EventHub records nothing until a stream opens (no event id was given out before, so no
client can resume from one), then records status changes as before."""

from __future__ import annotations

from types import SimpleNamespace

from statek.models.status import DONE, READY, STARTED, SUSPENDED
from statek.server.events import EventHub


def _job(state: int, lines: list[str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(state=state, console_lines=lines, exit_status=7, error=None)


async def test_a_dormant_hub_records_nothing_then_records_once_activated() -> None:
    hub = EventHub(16)
    hub.observe("J1", _job(DONE, ["hi"]))
    hub.observe("J2", None)  # would be fetched from the store if the hub were recording
    assert hub.seq == 0 and not hub.events and not hub.pending
    hub.activate()
    hub.observe("J1", _job(DONE, ["hi"]))
    assert [(kind, payload) for _seq, _job_uuid, kind, payload in hub.events] == [
        ("console", (0, "hi")), ("status", (DONE, 7, None))]
    assert hub.resume_point(hub.event_id(1)) == 1


async def test_a_started_job_reports_its_status_before_the_lines_it_printed() -> None:
    """`statek tail` printed a job's first line before `[STARTED]`: one look after a step sees
    both, and a job left runnable was started before it printed."""
    hub = EventHub(16)
    hub.activate()
    hub.observe("J1", _job(READY))
    hub.observe("J1", _job(STARTED, ["turn 1"]))
    hub.observe("J1", _job(SUSPENDED, ["turn 1", "waiting"]))
    hub.observe("J1", _job(STARTED, ["turn 1", "waiting", "woke"]))
    hub.observe("J1", _job(DONE, ["turn 1", "waiting", "woke", "bye"]))
    assert [(kind, payload[:2]) for _seq, _job_uuid, kind, payload in hub.events] == [
        ("status", (READY, None)),
        ("status", (STARTED, None)), ("console", (0, "turn 1")),
        ("console", (1, "waiting")), ("status", (SUSPENDED, None)),
        ("status", (STARTED, None)), ("console", (2, "woke")),
        ("console", (3, "bye")), ("status", (DONE, 7))]
