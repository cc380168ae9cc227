"""Outbox units: records, segments, the drain (in one process: the writer touches no dbzero
state, so a test can play producer and worker), reclaim, wake-ups and the client's checks."""

from __future__ import annotations

import datetime
import decimal
import logging
import os
import pickle
import select
import struct
import zlib
from pathlib import Path
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.errors import IllegalTransitionError, JobNotFoundError, UnstorableValueError
from statek.models.job import Job
from statek.outbox import drain as drain_module
from statek.outbox import layout, records
from statek.outbox.client import JobPendingError, OutboxClient, PendingJob
from statek.outbox.drain import OutboxDrain
from statek.outbox.reader import Segment
from statek.outbox.state import FINISHED, find_state, lookup, made_for
from statek.outbox.wake import Listener, Notifier
from statek.outbox.writer import OutboxWriter, close_writers


@pytest.fixture
def client(statek_store: str) -> OutboxClient:
    return OutboxClient(statek_store)


@pytest.fixture
def drain(statek_store: str, monkeypatch: pytest.MonkeyPatch) -> OutboxDrain:
    monkeypatch.setattr(drain_module, "LOOK_EVERY_S", 0.0)  # every call is a safety look
    found = OutboxDrain(statek_store)
    yield found  # type: ignore[misc]
    found.close()
    close_writers()


def _frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def _segments(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".seg"))


# ---------------------------------------------------------------- records
def test_values_cross_a_record_unchanged() -> None:
    value = {"when": datetime.datetime(2026, 12, 1, 1, 2, 3, tzinfo=datetime.UTC),
             "day": datetime.date(2026, 1, 2), "price": decimal.Decimal("1.25"),
             "raw": b"\x00\xff", "tags": {1, 2}, "pair": (1, "a"), "nested": [{"k": [None]}]}
    frames, end, damaged = records.split(records.dumps(("msg", "X", value)), 100)
    assert not damaged and len(frames) == 1 and frames[0][0] == end
    assert records.loads(frames[0][1]) == ("msg", "X", value)


def test_a_record_naming_a_function_is_refused() -> None:
    payload = pickle.dumps(("msg", "X", os.system))
    with pytest.raises(records.RecordError, match=r"posix\.system"):
        records.loads(payload)


def test_cut_and_damaged_frames_are_told_apart() -> None:
    good = records.dumps(("cancel", "A"))
    frames, end, damaged = records.split(good + good[:7], 0)
    assert (len(frames), end, damaged) == (1, len(good), False)  # cut short: not yet
    spoiled = bytearray(good * 2)
    spoiled[-1] ^= 0xFF
    frames, end, damaged = records.split(bytes(spoiled), 0)
    assert (len(frames), end, damaged) == (1, len(good), True)


# ---------------------------------------------------------------- submit, drain, lookup
def test_submitted_jobs_are_made_once_under_their_ids(client: OutboxClient, drain: OutboxDrain,
                                                      agent: Any) -> None:
    ids = client.submit(agent, [{"i": 1}, {"i": 2}], None, {"warmup_code": "exit(i)"})
    assert len(set(ids)) == 2 and all(i.startswith("ob") for i in ids)
    assert _segments(client.writer.directory)  # on disk before the worker looked
    assert drain.drain(100) >= 2
    assert drain.drain(100) == 0  # nothing new: nothing applied again
    jobs = [lookup("test", i) for i in ids]
    assert [j.locals["i"] for j in jobs] == [1, 2]
    api = statek.StatekClientAPI()  # in the worker, the outbox id names the job too
    assert api.get_job(ids[0]) == jobs[0]
    assert len(db0.find(Job)) == 2


def test_messages_and_cancel_for_a_pending_id_follow_its_submit(
        client: OutboxClient, drain: OutboxDrain, agent: Any) -> None:
    (job_id,) = client.submit(agent, [None], None, {})
    with pytest.raises(JobPendingError, match="waits for the worker"):
        client.get_job(job_id)
    assert client.push_message(PendingJob(client, job_id), "first") >= 0
    assert client.cancel(job_id) is True
    drain.drain(100)
    job = lookup("test", job_id)
    assert job.messages == ["first"] and job.cancelled
    with pytest.raises(IllegalTransitionError):
        client.push_message(job_id, "late")  # read back: the job is cancelled


def test_events_become_jobs_of_a_supervised_agent(client: OutboxClient,
                                                  drain: OutboxDrain) -> None:
    supervised = statek.SupervisedAgent("watcher")
    supervised.update_warmup_def("exit(event)")
    client.push_event(supervised, {"n": 7})
    before = len(db0.find(Job))
    drain.drain(100)
    made = [j for j in db0.find(Job)]
    assert len(made) == before + 1 and made[0].locals["event"] == {"n": 7}


def test_records_that_cannot_apply_become_dead_letters(client: OutboxClient,
                                                       drain: OutboxDrain) -> None:
    client.writer.append([records.dumps(("msg", "obffffffffffffffff0", "lost")),
                          _frame(pickle.dumps(("msg", "X", os.system)))])
    drain.drain(100)
    reasons = [letter["reason"] for letter in find_state("test").dead_letters]
    assert any("posix.system" in r for r in reasons)  # a record that is not a message
    # the message for no job is kept where a queued one would be (README: "the queue's
    # dead_letters"; a new user looked there and found nothing)
    assert not any("no job" in r for r in reasons)
    (letter,) = statek.StatekPushQueue("test").dead_letters
    assert (letter["kind"], letter["target"], letter["item"]) == (
        "message", "obffffffffffffffff0", "lost")
    assert "no job" in letter["reason"]


def test_a_message_for_a_job_cancelled_meanwhile_is_a_queue_dead_letter(
        client: OutboxClient, drain: OutboxDrain, agent: Any) -> None:
    (job_id,) = client.submit(agent, [None], None, {})
    drain.drain(100)
    client.push_message(job_id, "too late")
    job = made_for(find_state("test"), job_id)
    job.cancel()  # after the producer's check, before the worker applies the message
    drain.drain(100)
    (letter,) = statek.StatekPushQueue("test").dead_letters
    assert (letter["kind"], letter["item"]) == ("message", "too late")
    assert "cancelled" in letter["reason"] and job.messages == []


def test_the_client_checks_before_writing(client: OutboxClient, agent: Any) -> None:
    with pytest.raises(UnstorableValueError, match="_hidden"):
        client.submit(agent, [{"_hidden": 1}], None, {})
    with pytest.raises(UnstorableValueError, match="64"):
        client.submit(agent, [{"big": 2**70}], None, {})
    with pytest.raises(LookupError, match="no agent with role or uuid 'NOSUCHAGENT'"):
        client.submit("NOSUCHAGENT", [None], None, {})
    with pytest.raises(TypeError, match="agent must be an Agent"):
        client.submit(3, [None], None, {})
    # a warmup that is not Python: given an id, it became one dead letter in the worker
    with pytest.raises(ValueError, match="warmup block 1 of 1 is not valid Python"):
        client.submit(agent, [None], None, {"warmup_code": "x = ("})
    assert client.submit("worker", [None], None, {})  # the agent fixture's role
    with pytest.raises(JobNotFoundError, match="NOSUCHJOB"):
        client.push_message("NOSUCHJOB", "x")
    # not a uuid, and another store's uuid: "no job" as without a worker, not a type error
    # or dbzero's RuntimeError (found by a new user)
    for job_id in ("88ec2038-5a9d-4c1e-9b7e-3f2a1c0d4e5f", "MGVLTMKGT7NUFIEBUKWYABAX"):
        with pytest.raises(JobNotFoundError, match=f"no job with uuid '{job_id}'"):
            client.push_message(job_id, "x")
        with pytest.raises(JobNotFoundError, match=f"no job with uuid '{job_id}'"):
            client.cancel(job_id)
        with pytest.raises(JobNotFoundError, match=f"no job with uuid '{job_id}'"):
            client.get_job(job_id)
    with pytest.raises(JobNotFoundError, match="applied it"):
        client.get_job("ob0123456789abcdef0")  # another producer's id, not applied
    (name,) = _segments(client.writer.directory)  # the refused calls wrote nothing
    written = list(Segment(client.writer.directory / name, "0", 0).read(0))
    assert [item[0] for _end, item in written] == ["jobs"]


# ---------------------------------------------------------------- segments and reclaim
def test_a_sealed_segment_is_deleted_once_its_end_is_committed(
        client: OutboxClient, drain: OutboxDrain, agent: Any) -> None:
    client.submit(agent, [None], None, {})
    directory = client.writer.directory
    close_writers()  # seals the segment
    (name,) = _segments(directory)
    drain.drain(100)
    assert drain.positions[name] == FINISHED and _segments(directory) == [name]
    db0.commit()
    drain.drain(100)
    assert _segments(directory) == [] and name not in find_state("test").positions


def test_a_dead_producers_cut_record_is_dropped(statek_store: str, drain: OutboxDrain,
                                                agent: Any) -> None:
    directory = layout.directory_of(statek_store)
    directory.mkdir(parents=True, exist_ok=True)
    whole = records.dumps(("jobs", str(db0.uuid(agent)), None, {}, [("ob00000000000000000", {})]))
    cut = records.dumps(("jobs", str(db0.uuid(agent)), None, {}, [("ob00000000000000001", {})]))
    name = layout.segment_name("0" * 16, 1)
    (directory / name).write_bytes(whole + cut[:-3])  # no process holds its lock: dead
    drain.drain(100)
    assert lookup(statek_store, "ob00000000000000000") is not None
    assert lookup(statek_store, "ob00000000000000001") is None
    assert drain.positions[name] == FINISHED


def test_a_live_producers_cut_record_waits_for_the_rest(client: OutboxClient,
                                                        drain: OutboxDrain, agent: Any) -> None:
    client.submit(agent, [{"i": 0}], None, {})  # the writer holds its segment's lock
    (name,) = _segments(client.writer.directory)
    path = client.writer.directory / name
    frame = records.dumps(("jobs", str(db0.uuid(agent)), None, {},
                           [("ob00000000000000002", {"i": 1})]))
    with open(path, "ab") as tail:
        tail.write(frame[:10])
    drain.drain(100)
    assert drain.positions[name] not in (0, FINISHED)  # the first record, not the cut one
    assert lookup("test", "ob00000000000000002") is None
    with open(path, "ab") as tail:
        tail.write(frame[10:])
    drain.drain(100)
    assert lookup("test", "ob00000000000000002").locals["i"] == 1


def test_a_producers_segments_are_read_in_order(statek_store: str, drain: OutboxDrain,
                                                agent: Any, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    from statek.outbox import writer as writer_module

    monkeypatch.setattr(writer_module, "SEGMENT_BYTES", 1)  # every append seals its segment
    writer = OutboxWriter(layout.directory_of(statek_store),
                          layout.store_file_of(statek_store))
    (job_id,) = writer.new_ids(1)
    agent_id = str(db0.uuid(agent))
    writer.append([records.dumps(("jobs", agent_id, None, {}, [(job_id, {})]))])
    writer.append([records.dumps(("msg", job_id, "after"))])
    assert len(_segments(writer.directory)) == 2
    drain.turn = 0
    drain.drain(1)  # the limit stops it after the first segment
    drain.drain(100)
    assert lookup(statek_store, job_id).messages == ["after"]


def test_segment_sees_a_live_and_a_dead_producer(tmp_path: Path) -> None:
    store_file = tmp_path / "p.db0"
    store_file.write_bytes(b"")
    writer = OutboxWriter(tmp_path / "p.outbox", store_file)
    writer.append([records.dumps(("cancel", "A"))])
    (name,) = _segments(writer.directory)
    segment = Segment(writer.directory / name, *layout.parse_name(name))  # type: ignore[misc]
    assert segment.producer_alive()
    writer.close()
    assert not segment.producer_alive()
    items = list(segment.read(0))
    assert [item for _end, item in items] == [("cancel", "A"), ("end",)]
    assert segment.sealed_at == items[-1][0] == segment.size()
    segment.close()


# ---------------------------------------------------------------- wake-ups
def test_a_producer_wakes_the_listener(tmp_path: Path) -> None:
    store_file = tmp_path / "w.db0"
    store_file.write_bytes(b"")
    listener = Listener(store_file)
    notifier = Notifier(store_file)
    try:
        notifier.notify()
        readable, _, _ = select.select([listener], [], [], 30)  # bound only: arrives at once
        assert readable and listener.drain() == 1 and listener.drain() == 0
    finally:
        listener.close()
        notifier.close()
    Notifier(store_file).notify()  # no worker listening: ignored, no error


def test_outbox_messages_reopening_finished_jobs_log_one_line(
        client: OutboxClient, drain: OutboxDrain, agent: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """Seven finished jobs re-opened by one outbox drain: one INFO line naming five of them,
    each job's own line at DEBUG (a feeder messaging many finished jobs filled the log)."""
    api = statek.StatekClientAPI()
    jobs = [api.submit_new_job(agent, warmup_code="x = 1") for _ in range(7)]
    for job in jobs:
        job.finish(exit_status="first")
    db0.commit()
    for job in jobs:
        client.push_message(job.uuid, "again")
    with caplog.at_level(logging.DEBUG, logger="statek"):
        drain.drain(100)
    assert all(len(job.previous_results) == 1 for job in jobs)
    summary = [r for r in caplog.records
               if r.name == "statek.outbox" and "re-opened" in r.getMessage()]
    (line,) = summary
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("7 finished job(s) re-opened by outbox messages")
    assert sum(job.uuid in line.getMessage() for job in jobs) == 5
    per_job = [r for r in caplog.records
               if r.name == "statek.jobs" and "re-opened by a message" in r.getMessage()]
    assert len(per_job) == 7 and {r.levelno for r in per_job} == {logging.DEBUG}
