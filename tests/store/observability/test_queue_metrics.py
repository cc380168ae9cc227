"""Queue depth and oldest-item age as the collector reads them from the push queues."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import statek
from statek.observability import metrics


def gauges(loop: Any) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in metrics._queue_families([loop]):
        for sample in family.samples:
            out[sample.name, sample.labels["prefix"], sample.labels["kind"]] = sample.value
    return out


def test_depth_and_age_of_queued_items(api: statek.StatekClientAPI,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_ages", metrics.QueueAges())
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    collector = statek.SupervisedAgent("collector-q", "")
    queue = statek.StatekPushQueue()
    queue.push_event(collector, {"n": 1})
    queue.push_event(collector, {"n": 2})
    loop = SimpleNamespace(queue_prefixes=["test"])

    first = gauges(loop)
    assert first["statek_queue_depth", "test", "events"] == 2
    assert first["statek_queue_depth", "test", "messages"] == 0
    assert first["statek_queue_oldest_age_seconds", "test", "events"] == 0  # first sighting

    clock[0] += 7.5
    later = gauges(loop)
    assert later["statek_queue_oldest_age_seconds", "test", "events"] == 7.5  # same head

    queue.ack_events(collector, 1)  # the oldest was consumed: a new head, age unknown yet
    clock[0] += 1.0
    moved = gauges(loop)
    assert moved["statek_queue_depth", "test", "events"] == 1
    assert moved["statek_queue_oldest_age_seconds", "test", "events"] == 0
