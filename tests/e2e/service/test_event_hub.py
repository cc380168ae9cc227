"""EventHub records nothing until a stream opens (no event id was given out before, so no
client can resume from one), then records status changes as before."""

from __future__ import annotations

from types import SimpleNamespace

from statek.models.status import DONE
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
