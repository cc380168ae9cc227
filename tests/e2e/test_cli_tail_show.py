"""`statek tail` prints on stdout; `statek show` prints a re-opened job's previous results;
`statek push -` reads its message from stdin.

The commands read through small seams (`_remote` for --url, `_local_read` for the embedded
store), replaced here so the printing is tested without a worker process."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from statek import cli


class FakeRemote:
    """Stands in for the HTTP client: the events of one job run."""

    def __init__(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self._events = events

    def events(self, job: str) -> Iterator[SimpleNamespace]:
        assert job == "J1"
        for kind, data in self._events:
            yield SimpleNamespace(kind=kind, data=data)


def test_tail_writes_console_and_status_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [("status", {"status": "STARTED"}), ("console", {"text": "hello\n"}),
              ("gap", {"reason": "fell behind"}),
              ("status", {"status": "DONE", "error": None, "exit_status": [1, "a"]}),
              ("console", {"text": "never printed"})]
    monkeypatch.setattr(cli, "_remote", lambda url, token: FakeRemote(events))
    result = CliRunner().invoke(cli.main, ["tail", "J1", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "[STARTED]", "hello", "[gap: fell behind]", '[DONE] exit_status: [1, "a"]']
    assert result.stderr == ""


def job_detail(previous: list[dict[str, Any]]) -> dict[str, Any]:
    """What views.job_detail returns for a DONE job (the fields `show` prints)."""
    return {"uuid": "J1", "agent": "helper", "status": "DONE", "cancelled": False,
            "usage": {"turns": 2, "input_tokens": 10, "output_tokens": 4},
            "exit_status": "third", "error": None, "locals": {"n": 3}, "console": ["hi\n"],
            "chat_log": [], "budget": None, "budget_exhausted": None,
            "previous_results": previous}


def show(monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> str:
    monkeypatch.setattr(cli, "_local_read", lambda read: read())
    monkeypatch.setattr(cli, "_local_job", lambda job: data)
    result = CliRunner().invoke(cli.main, ["show", "J1"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_show_prints_previous_results_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    out = show(monkeypatch, job_detail([
        {"exit_status": "first", "error": None, "finished_at": 0.0, "reopened_at": 60.0},
        {"exit_status": None, "error": "boom", "finished_at": 120.0, "reopened_at": None}]))
    lines = out.splitlines()
    at = lines.index("previous results (2, oldest first; a message re-opened the job after "
                     "each):")
    assert lines[at + 1] == ('  1. exit_status: "first"  finished 1970-01-01T00:00:00+00:00'
                             "  re-opened 1970-01-01T00:01:00+00:00")
    assert lines[at + 2] == "  2. error: boom  finished 1970-01-01T00:02:00+00:00  re-opened ?"
    assert 'exit_status: "third"' in lines[:at]  # the current result stays first


def test_show_without_previous_results_prints_no_section(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "previous results" not in show(monkeypatch, job_detail([]))


class PushRecorder:
    """Stands in for the HTTP client: records what `push` sends."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any]] = []

    def push_message(self, job: str, value: Any) -> int:
        self.pushed.append((job, value))
        return len(self.pushed) - 1


@pytest.mark.parametrize(("args", "stdin", "sent"), [
    (["-"], "line one\nline two\n", "line one\nline two\n"),
    (["-", "--json"], '{"task": "sum", "n": [1, 2]}', {"task": "sum", "n": [1, 2]}),
    (["not -"], "ignored", "not -"),
])
def test_push_reads_a_dash_message_from_stdin(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                             stdin: str, sent: Any) -> None:
    remote = PushRecorder()
    monkeypatch.setattr(cli, "_remote", lambda url, token: remote)
    result = CliRunner().invoke(cli.main, ["push", "J1", *args, "--url", "http://127.0.0.1:9"],
                                input=stdin)
    assert result.exit_code == 0, result.output
    assert remote.pushed == [("J1", sent)]
    assert result.stdout == "queued message #0 for J1\n"


@pytest.mark.parametrize(("args", "stdin", "error"), [
    (["-"], "", "MESSAGE is '-' but stdin was empty"),
    (["-", "--json"], "{not json", "MESSAGE is not valid JSON"),
])
def test_push_refuses_an_empty_or_malformed_stdin_message(
        monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str, error: str) -> None:
    remote = PushRecorder()
    monkeypatch.setattr(cli, "_remote", lambda url, token: remote)
    result = CliRunner().invoke(cli.main, ["push", "J1", *args, "--url", "http://127.0.0.1:9"],
                                input=stdin)
    assert result.exit_code == 1
    assert error in result.stderr
    assert remote.pushed == []
