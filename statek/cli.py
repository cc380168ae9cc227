"""The `statek` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from statek._version import __version__


class _Main(click.Group):
    """Settings statek cannot use (a bad STATEK_* value) are one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from statek.errors import ConfigurationError  # here: `--help` stays light

            if isinstance(exc, ConfigurationError):
                raise click.ClickException(str(exc)) from None
            raise


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="statek")
def main() -> None:
    """statek: durable LLM agents in dbzero."""


token_option_dashboard = click.option(
    "--token", envvar="STATEK_HTTP_TOKEN", default=None,
    help="A token browsers must sign in with (env STATEK_HTTP_TOKEN); none: open to anyone "
         "who reaches the address.")
FIXED_DEMO_JOBS = 4  # statek.demo.FIXED_JOBS (kept here so `--help` imports nothing heavy)


@main.command()
@click.option("--helpers", default=None, type=click.IntRange(0),
              help="Helper jobs the dispatcher delegates to  [default: 200].")
@click.option("--jobs", "jobs_", default=None, type=click.IntRange(FIXED_DEMO_JOBS),
              help=f"Jobs in the round: the {FIXED_DEMO_JOBS} fixed ones plus N-"
                   f"{FIXED_DEMO_JOBS} helpers (scales the fleet; instead of --helpers).")
@click.option("--concurrency", default=100, show_default=True, type=click.IntRange(1),
              help="max_concurrency.")
@click.option("--dashboard", is_flag=True,
              help="Serve the HTTP API and web dashboard while the round runs, print its URL, "
                   "and keep serving after it until Ctrl-C.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port of --dashboard (0: one the OS picks).")
def demo(helpers: int | None, jobs_: int | None, concurrency: int, dashboard: bool,
         port: int) -> None:
    """Run a small fleet end to end over the embedded store with the offline provider."""
    from rich.console import Console
    from rich.live import Live

    from statek._speedups import IMPLEMENTATION
    from statek.demo import describe, progress_table, run_demo, summary_table
    from statek.store import settings

    if helpers is not None and jobs_ is not None:
        raise click.UsageError("give --helpers or --jobs, not both")
    count = 200 if helpers is None else helpers
    if jobs_ is not None:
        count = jobs_ - FIXED_DEMO_JOBS
    cfg = settings()
    click.echo(f"statek {__version__}: store {cfg.data_dir}/{cfg.default_prefix}, "
               f"provider scripted (offline), scheduler kernels: {IMPLEMENTATION}")
    console = Console()
    live = Live(console=console, refresh_per_second=4, transient=True) \
        if console.is_terminal else None

    def watch(progress: Any) -> None:
        if live is not None:
            live.update(progress_table(progress))

    def finished(report: Any) -> None:
        if live is not None:
            live.stop()
        console.print(progress_table(report_progress(report)))
        console.print(summary_table(report))
        for line in describe(report):
            click.echo(line)
        if dashboard:
            click.echo("still serving the dashboard; Ctrl-C to stop")

    def serving(url: str) -> None:
        click.echo(f"dashboard on {url}")

    if live is not None:
        live.start()
    try:
        run_demo(count, concurrency, watch, port if dashboard else None, serving, finished)
    except Exception as exc:
        from statek.errors import StatekError

        if isinstance(exc, StatekError):
            raise click.ClickException(str(exc)) from None
        raise
    finally:
        if live is not None:
            live.stop()


def report_progress(report: Any) -> Any:
    """The last frame of the live display, from the finished round's report."""
    from statek.demo import Progress

    return Progress([], 0.0, report.by_status, report.stats.steps_done,
                    report.stats.in_flight, report.seconds)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (another than loopback needs --token).")
@click.option("--port", default=8377, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: one the OS picks; the printed URL names it).")
@token_option_dashboard
def dashboard(host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard over the embedded store, read-only (works while a worker
    holds the store; cancel and push need the worker's own dashboard)."""
    import asyncio

    from pydantic import SecretStr

    from statek.dashboard.readonly import serve
    from statek.errors import StatekError
    from statek.store import current_prefix

    _open_store("r")
    try:
        secret = None if not token else SecretStr(token)
        asyncio.run(serve(str(current_prefix()), host, port, secret,
                          lambda url: click.echo(f"dashboard on {url}  (Ctrl-C to stop)")))
    except KeyboardInterrupt:
        pass
    except StatekError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        _store_closed()


@main.command()
@click.option("--host", default=None,
              help="Address to serve on (setting http_host; another than loopback needs a "
                   "token).")
@click.option("--port", default=8378, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: one the OS picks; the printed URL names it).")
@click.option("--upstream", default=None, metavar="URL",
              help="The worker's HTTP API for reads and streams (default: the URL the worker "
                   "holding the store noted).")
def serve(host: str | None, port: int, upstream: str | None) -> None:
    """Serve the HTTP API from a process of its own beside a running worker: submits,
    messages, events and cancels go through this process's outbox (answered 202 once on
    disk), reads and streams are forwarded to the worker's API."""
    import asyncio
    import sys

    import statek
    from statek.runner import event_loop_factory
    from statek.server.front import serve as serve_front
    from statek.store import current_prefix

    cfg = statek.get_statek_settings()
    statek.init(cfg)
    _log_to_stderr()
    _open_store("front")

    def ready(url: str) -> None:
        click.echo(f"statek serve: http api on {url}  (writes through the outbox; Ctrl-C to "
                   "stop)")
        sys.stdout.flush()

    try:
        with asyncio.Runner(loop_factory=event_loop_factory(cfg)) as runner:
            runner.run(serve_front(cfg, str(current_prefix()), host or cfg.http_host, port,
                                   upstream, ready))
        click.echo("statek serve stopped (what it accepted is on disk for the worker)")
    except KeyboardInterrupt:
        pass
    except statek.StatekError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        _store_closed()


def _log_to_stderr() -> None:
    """The worker's log (its "worker ready" line, shutdown, failures) on stderr at
    STATEK_LOG_LEVEL, as text or JSON lines (STATEK_LOG_FORMAT)."""
    from statek.observability.logs import configure_logging
    from statek.store import settings

    configure_logging(settings(), own_process=True)


@main.command()
@click.option("--concurrency", default=100, show_default=True, type=click.IntRange(1),
              help="max_concurrency.")
@click.option("--provider", default=None,
              help="Provider for jobs whose MODEL/PROVIDER names none "
                   "(default: STATEK_DEFAULT_PROVIDER; unset, such jobs fail).")
@click.option("--offline", is_flag=True,
              help="Answer every model call with the offline scripted provider "
                   "(no network, no API key; jobs reply exit('ok')).")
@click.option("--until-idle", is_flag=True, help="Exit once nothing can make progress.")
@click.option("--import", "modules", multiple=True, metavar="MODULE",
              help="Import this module first (repeatable; the current folder is importable): "
                   "where the application's @tool functions and providers are registered.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None,
              help="Serve the HTTP API on this port (0: one the OS picks; the log line "
                   "'http api on URL' names it). Default: STATEK_HTTP_PORT, else none.")
@click.option("--http-host", default=None,
              help="Address of the HTTP API (default 127.0.0.1; another needs "
                   "STATEK_HTTP_TOKEN).")
def worker(concurrency: int, provider: str | None, offline: bool, until_idle: bool,
           modules: tuple[str, ...], http_port: int | None, http_host: str | None) -> None:
    """Run a worker over the embedded store (STATEK_DATA_DIR) until stopped."""
    import importlib
    import os
    import sys

    import statek

    if modules and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the application's own folder
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise click.BadParameter(f"cannot import {name!r}: {exc}",
                                     param_hint="--import") from exc
        except Exception as exc:  # the module's own code failed: say where, in one line
            raise click.ClickException(
                f"importing {name!r} (--import) failed: {type(exc).__name__}: {exc} "
                f"(run `python -c 'import {name}'` for the traceback)") from None

    _check_provider_names(provider, offline)
    if offline:
        if provider not in (None, "scripted"):
            raise click.UsageError(f"--offline answers every call offline; drop --provider "
                                   f"{provider}")
        from statek.providers import use_offline

        provider = use_offline()
        click.echo("offline: every model call is answered by the scripted provider")
    _log_to_stderr()
    overrides: dict[str, object] = {}
    if http_port is not None:
        overrides["http_port"] = http_port
    if http_host is not None:
        overrides["http_host"] = http_host
    cfg = statek.get_statek_settings(**overrides)
    statek.init(cfg)
    _open_store("worker")
    try:
        stats = statek.start_statek(settings=cfg, max_concurrency=concurrency,
                                    provider=provider, auto_terminate=until_idle)
    except statek.StatekError as exc:  # e.g. the HTTP API cannot bind
        statek.close()
        raise click.ClickException(str(exc)) from None
    click.echo(f"worker stopped: {stats.steps_done} steps, {stats.jobs_completed} jobs done")
    statek.close()


def _check_provider_names(provider: str | None, offline: bool) -> None:
    """--provider and STATEK_DEFAULT_PROVIDER name providers that exist (built in, or
    registered by an --import module): a typo fails here, not in every job."""
    from statek import get_statek_settings
    from statek.providers import registered_providers

    known = registered_providers()
    if provider is not None and provider not in known:
        raise click.BadParameter(f"no provider named {provider!r} (known: {', '.join(known)}; "
                                 "--import the module that registers yours)",
                                 param_hint="--provider")
    default = get_statek_settings().default_provider
    if provider is None and not offline and default and default not in known:
        raise click.ClickException(
            f"STATEK_DEFAULT_PROVIDER={default!r} names no provider (known: "
            f"{', '.join(known)}; --import the module that registers yours)")


def _open_store(mode: str, when_held: str | None = None, must_exist: str = "") -> None:
    """The embedded store in `mode` ("feed": writes go through the outbox when a worker holds
    it, see statek.outbox; "worker": "rw" for a worker of its own; "front": read-only with
    writes through the outbox, held or not, for `statek serve`); a held store or a missing
    one is one clear line (`when_held`: what that line tells the user to do instead)."""
    from statek.errors import StoreDamagedError, StoreLockedError
    from statek.store import (
        damaged_text,
        init_dbzero,
        open_default_store,
        open_prefix,
        settings,
        store_file,
    )

    cfg = settings()
    writes = mode in ("rw", "feed", "worker")
    if (must_exist or not writes) and not store_file(cfg.data_dir, cfg.default_prefix).exists():
        # a reader, or a command about an agent or a job, of a store that does not exist:
        # say so, and leave no empty store behind
        raise click.ClickException(f"no store at {cfg.data_dir}/{cfg.default_prefix} "
                                   f"(STATEK_DATA_DIR): "
                                   f"{must_exist or 'nothing was submitted there yet'}")
    try:
        if writes:
            open_default_store(when_held="feed" if mode == "feed" else "raise")
            return
        init_dbzero(cfg.data_dir, cfg)
        open_prefix(cfg.default_prefix, "feed" if mode == "front" else "r")
    except StoreDamagedError as exc:  # named by its file (open_prefix knows only the prefix)
        raise click.ClickException(damaged_text(
            cfg.default_prefix, exc.__cause__ or exc, cfg.data_dir / cfg.default_prefix)
        ) from None
    except StoreLockedError as exc:
        # the holder may be an application that opened the store before any worker ran
        who = ("another process" if not exc.pid else f"process {exc.pid}" + (
            f" ({exc.cmdline[:120]})" if exc.cmdline else ""))
        if mode == "worker":  # a second worker cannot run beside the first
            serving = f"; it serves {exc.url}" if exc.url else ""
            raise click.ClickException(
                f"{who} holds the store {cfg.data_dir}/{cfg.default_prefix}{serving}: stop it "
                "first, or give this worker its own STATEK_DATA_DIR") from None
        where = f"--url {exc.url}" if exc.url else (
            "--url URL (start the worker with --http-port to give it one)")
        raise click.ClickException(
            f"{who} holds the store {cfg.data_dir}/{cfg.default_prefix}: "
            f"{when_held or f'use {where}'}") from None
    except OSError as exc:  # STATEK_DATA_DIR is a file, unwritable, or cannot be created
        why = ("it is a file, not a directory" if cfg.data_dir.is_file()
               else exc.strerror or exc)
        raise click.ClickException(
            f"cannot open the store at {cfg.data_dir} (STATEK_DATA_DIR): {why}") from None


def _store_closed() -> None:
    import statek

    statek.close()


url_option = click.option("--url", envvar="STATEK_URL", default=None,
                          help="A worker's HTTP API (env STATEK_URL); default: the embedded "
                               "store (STATEK_DATA_DIR).")
token_option = click.option("--token", envvar="STATEK_HTTP_TOKEN", default=None,
                            help="Bearer token of that API (env STATEK_HTTP_TOKEN).")


def _remote(url: str, token: str | None) -> Any:
    from statek.remote import connect

    try:
        return connect(url, token, retries=2)
    except (ImportError, ValueError) as exc:
        raise click.ClickException(f"{exc} (--url)" if isinstance(exc, ValueError)
                                   else str(exc)) from None


def _run(call: Callable[[], Any], refused: tuple[type[Exception], ...] = ()) -> Any:
    """Run a client call; statek's errors, and the `refused` ones (a submit's ValueError or
    TypeError naming a param, as over HTTP), become one line and exit status 1."""
    from statek.errors import StatekError

    caught: tuple[type[Exception], ...] = (StatekError, *refused)
    try:
        return call()
    except caught as exc:
        raise click.ClickException(str(exc)) from None


def _parse_vars(pairs: tuple[str, ...], raw: str | None, option: str = "--var"
                ) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise click.ClickException(f"--json is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise click.ClickException(f"--json must be a JSON object, not "
                                       f"{type(parsed).__name__}")
        values.update(parsed)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.ClickException(f"{option} {pair!r}: expected NAME=VALUE")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text  # not JSON: the text itself
    return values


def _api_error_line(call: Callable[[], Any]) -> Any:
    """Local lookups raise the API's errors (statek.server.errors.ApiError): one line."""
    from statek.server.errors import ApiError

    try:
        return _run(call)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


@main.group()
def agent() -> None:
    """Agents: the roles jobs are submitted to (`agent add`, `agent list`)."""


@agent.command("add")
@click.argument("role")
@click.option("--prompt", default="", help="The agent's system prompt.")
@click.option("--model", default=None, help="Its jobs' default MODEL (provider/model).")
@click.option("--description", default="", help="One line on what it is for.")
@click.option("--supervised", is_flag=True,
              help="A SupervisedAgent: each queued event becomes one of its jobs.")
@click.option("--warmup", default=None,
              help="With --supervised: the code each job runs first; it reads the event as "
                   "its one outside local (plain agents take warmup_code per job: "
                   "statek submit ROLE --param warmup_code=...).")
def agent_add(role: str, prompt: str, model: str | None, description: str, supervised: bool,
              warmup: str | None) -> None:
    """Create an agent with ROLE in the embedded store; prints its uuid. The store must
    not be held by a worker: create agents before starting it."""
    if warmup is not None and not supervised:
        raise click.UsageError("--warmup goes with --supervised; a plain agent takes "
                               "warmup_code per job (statek submit ROLE --param "
                               "warmup_code=...)")
    import dbzero as db0

    from statek.models.agent import Agent, SupervisedAgent
    from statek.models.code_analysis import (
        JOB_BUILTINS,
        checked_blocks,
        event_reader_problem,
        external_names,
    )

    if warmup is not None:  # checked as the queue checks an event's agent, before any write
        blocks = _run(lambda: checked_blocks(warmup), refused=(ValueError,))
        problem = event_reader_problem(external_names(blocks, JOB_BUILTINS))
        if problem is not None:
            raise click.ClickException(f"--warmup {problem}")
    _open_store("rw", when_held="stop it first (agents are created while no worker holds "
                "the store, or in the worker's own process with statek.Agent(...))")
    try:
        same = [a for a in db0.find(Agent) if a.role == role]
        if same:
            raise click.ClickException(f"an agent with role {role!r} exists already "
                                       f"({db0.uuid(same[0])}): jobs are submitted by role")
        metadata = {"MODEL": model} if model else None
        kind = SupervisedAgent if supervised else Agent
        made = _run(lambda: kind(role, prompt, metadata=metadata, description=description),
                    refused=(ValueError, TypeError))
        if warmup is not None:
            made.update_warmup_def(warmup)
        db0.commit()
        click.echo(db0.uuid(made))
    finally:
        _store_closed()


@agent.command("list")
@url_option
@token_option
def agent_list(url: str | None, token: str | None) -> None:
    """The agents: role, uuid, kind and description (works while a worker runs)."""
    if url:
        rows = _run(_remote(url, token).agents)
    else:
        import dbzero as db0

        from statek.models.agent import Agent
        from statek.server.views import agent_data

        rows = _local_read(lambda: [agent_data(a) for a in db0.find(Agent)])
    if not rows:
        click.echo("no agents (create one: statek agent add ROLE --prompt TEXT)")
    for row in sorted(rows, key=lambda r: str(r["role"])):
        kind = "supervised" if row["supervised"] else "agent"
        click.echo(f"{row['role']}\t{row['uuid']}\t{kind}\t{row['description']}")


@main.command()
@click.argument("agent")
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A shared variable (VALUE read as JSON when it parses, else text).")
@click.option("--json", "raw", default=None, help="Shared variables as one JSON object.")
@click.option("--model", default=None, help="The job's MODEL (provider/model).")
@click.option("--param", "param_pairs", multiple=True, metavar="NAME=VALUE",
              help="A job param (max_turns, max_tokens, step_timeout, budget, ...; VALUE read "
                   "as JSON when it parses, else text).")
@click.option("--key", default=None, help="Idempotency key (with --url).")
@url_option
@token_option
def submit(agent: str, pairs: tuple[str, ...], raw: str | None, model: str | None,
           param_pairs: tuple[str, ...], key: str | None, url: str | None,
           token: str | None) -> None:
    """Submit a job of AGENT (a role or uuid); prints its uuid."""
    values = _parse_vars(pairs, raw)
    params = _parse_vars(param_pairs, None, "--param")
    if model is not None:
        params["model"] = model
    if key is not None and not url:
        raise click.ClickException("--key (an idempotency key) is for --url; the embedded "
                                   "store takes a submit once, when it returns")
    if url:
        client = _remote(url, token)
        body = {"agent": agent, "vars": values, **({"params": params} if params else {})}
        answer = _run(lambda: client.request("POST", "/v1/jobs", body, key=key))
        click.echo(answer["job"])
        return
    from statek.server.views import find_agent
    from statek.statek_client_api import StatekClientAPI

    _open_store("feed", must_exist=f"no agent {agent!r} there (statek agent add makes one)")
    try:
        target = _api_error_line(lambda: find_agent(agent))
        job = _run(lambda: StatekClientAPI().submit_new_job(target, values, **params),
                   refused=(ValueError, TypeError))
        click.echo(job.uuid)
    finally:
        _store_closed()


@main.command()
@click.argument("job")
@click.argument("message")
@click.option("--json", "as_json", is_flag=True, help="MESSAGE is JSON.")
@url_option
@token_option
def push(job: str, message: str, as_json: bool, url: str | None, token: str | None) -> None:
    """Queue MESSAGE for JOB (the worker delivers it); MESSAGE `-` reads it from stdin."""
    if message == "-":  # long or multi-line messages come from a pipe or a file
        message = sys.stdin.read()
        if not message:
            raise click.ClickException("MESSAGE is '-' but stdin was empty")
    value: Any = message
    if as_json:
        try:
            value = json.loads(message)
        except ValueError as exc:
            raise click.ClickException(f"MESSAGE is not valid JSON: {exc}") from None
    if url:
        seq = _run(lambda: _remote(url, token).push_message(job, value))
    else:
        from statek.statek_client_api import StatekClientAPI

        _open_store("feed", must_exist=f"no job {job} there")
        try:
            client = StatekClientAPI()
            seq = _run(lambda: client.push_message(job, value))
            if client.outbox is not None:  # the queue's number is given when it is applied
                click.echo(f"queued message for {job} through the worker's outbox")
                return
        finally:
            _store_closed()
    click.echo(f"queued message #{seq} for {job}")


@main.command()
@click.argument("job")
@url_option
@token_option
def cancel(job: str, url: str | None, token: str | None) -> None:
    """Cancel JOB."""
    queued = False  # through the outbox: the running worker applies it
    if url:
        done = _run(lambda: _remote(url, token).cancel_job(job))
    else:
        from statek.statek_client_api import StatekClientAPI

        _open_store("feed", must_exist=f"no job {job} there")
        try:
            client = StatekClientAPI()
            queued = client.outbox is not None
            done = _run(lambda: client.cancel_job(job))
        finally:
            _store_closed()
    if not done:  # nothing was cancelled: a script must be able to tell
        raise click.ClickException(f"{job} had already finished: nothing to cancel")
    click.echo(f"cancel of {job} queued for the worker" if queued else f"cancelled {job}")


def _local_read(read: Callable[[], Any]) -> Any:
    """`read()` over the embedded store opened read-only (works while a worker runs)."""
    _open_store("r")
    try:
        return _api_error_line(read)
    finally:
        _store_closed()


@main.command()
@click.option("--status", default=None, help="Only these statuses (comma-separated).")
@click.option("--agent", default=None, help="Only this agent (role or uuid).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Jobs listed (newest first).")
@url_option
@token_option
def jobs(status: str | None, agent: str | None, limit: int, url: str | None,
         token: str | None) -> None:
    """Jobs by agent and status, then the newest jobs."""
    if url:
        client = _remote(url, token)
        counts = _run(client.counts)
        page = _run(lambda: client.list_jobs(status, agent, limit, order="desc"))
    else:
        counts, page = _local_read(lambda: _local_jobs(status, agent, limit))
    _print_counts(counts)
    click.echo("")
    rows = [(j["uuid"], j["agent"], _status_text(j), (j["error"] or "")[:60])
            for j in page["jobs"]]
    _print_rows(("job", "agent", "status", "error"), rows)


def _status_text(row: dict[str, Any]) -> str:
    """A listed job's status; `SUSPENDED (BudgetExhausted: tokens)` while a budget holds it."""
    held = row.get("budget_exhausted")
    return f"{row['status']} (BudgetExhausted: {held['budget']})" if held else row["status"]


def _local_jobs(status: str | None, agent: str | None,
                limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from statek.models.root import root_jobs
    from statek.server import views

    anchor = root_jobs()
    by_agent: dict[str, dict[str, int]] = {}
    views.count_by_agent(anchor, 0, len(anchor), {}, by_agent)
    counts = {"by_status": views.status_counts(), "by_agent": by_agent, "total": len(anchor)}
    target = None if agent is None else views.find_agent(agent)
    page = views.list_jobs(views.parse_status(status), target, limit, None, True)
    from statek.admission.budgets import mark_held

    mark_held(page["jobs"])
    return counts, page


def _print_counts(counts: dict[str, Any]) -> None:
    from statek.models.status import STATUS_NAMES

    rows = [(role, *(str(row.get(s, 0)) for s in STATUS_NAMES))
            for role, row in sorted(counts["by_agent"].items())]
    rows.append(("(all)", *(str(counts["by_status"].get(s, 0)) for s in STATUS_NAMES)))
    _print_rows(("agent", *STATUS_NAMES), rows)


def _print_rows(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = [list(headers), *rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(headers))]
    for row in table:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@main.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@url_option
@token_option
def show(job: str, as_json: bool, url: str | None, token: str | None) -> None:
    """A job: status, error, exit, previous results, usage, locals, console, chat log."""
    if url:
        data = _run(lambda: _remote(url, token).get_job(job)).data
    else:
        data = _local_read(lambda: _local_job(job))
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    usage = data["usage"]
    click.echo(f"job {data['uuid']}  agent {data['agent']}  status {data['status']}"
               + ("  (cancelled)" if data.get("cancelled") else ""))
    click.echo(f"turns {usage['turns']}  tokens in {usage['input_tokens']} "
               f"out {usage['output_tokens']}")
    for line in _budget_lines(data.get("budget"), data.get("budget_exhausted")):
        click.echo(line)
    if data["status"] == "DONE":
        click.echo(f"exit_status: {json.dumps(data['exit_status'], default=str)}")
    if data["error"]:
        click.echo(f"error: {data['error']}")
    for line in _previous_result_lines(data.get("previous_results") or []):
        click.echo(line)
    click.echo("locals:")
    for name, value in sorted(data["locals"].items()):
        click.echo(f"  {name} = {json.dumps(value, default=str)[:200]}")
    click.echo("console:")
    for line in data["console"]:
        click.echo("  " + line.rstrip("\n"))
    click.echo("chat log:")
    for entry in data["chat_log"]:
        click.echo("  " + json.dumps(entry, default=str)[:300])


def _previous_result_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """What the job had finished with before each message re-opened it (oldest first), so
    `show` does not present the latest result as the only one."""
    if not results:
        return []
    lines = [f"previous results ({len(results)}, oldest first; a message re-opened the job "
             "after each):"]
    for number, result in enumerate(results, 1):
        outcome = (f"error: {result['error']}" if result.get("error")
                   else f"exit_status: {json.dumps(result.get('exit_status'), default=str)}")
        lines.append(f"  {number}. {outcome}  finished {_when(result.get('finished_at'))}"
                     f"  re-opened {_when(result.get('reopened_at'))}")
    return lines


def _when(stamp: Any) -> str:
    """A stored Unix time as UTC ISO 8601 (seconds), or '?' when absent."""
    import datetime

    if not isinstance(stamp, int | float):
        return "?"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")


def _local_job(job: str) -> dict[str, Any]:
    from statek.admission.budgets import budget_fields
    from statek.server import views

    found = views.fetch_job(job)
    return {**views.job_detail(found), **budget_fields(found)}


def _budget_lines(budget: dict[str, Any] | None,
                  held: dict[str, Any] | None) -> list[str]:
    """What `show` and `budget` print about a job's budget."""
    if budget is None:
        return []
    limits, spent = budget["limits"], budget["spent"]
    parts = [f"{kind} {spent[kind]:g}/{limits[kind]:g}" for kind in limits if limits[kind]]
    lines = [f"budget of job {budget['owner']} ({budget['policy']}): "
             + (", ".join(parts) or "no limits")]
    if held:
        lines.append(f"BudgetExhausted: {held['budget']} {held['spent']:g} of {held['limit']:g} "
                     f"(budget of job {held['owner']}); raise it with: statek budget "
                     f"{held['owner']} --{held['budget']} N")
    return lines


@main.command()
@click.argument("job")
@click.option("--tokens", type=click.IntRange(0), default=None, help="Tokens (input+output).")
@click.option("--cost", type=click.FloatRange(0), default=None, help="Cost (model_prices).")
@click.option("--steps", type=click.IntRange(0), default=None, help="Steps.")
@click.option("--seconds", type=click.FloatRange(0), default=None, help="Wall seconds.")
@click.option("--set", "absolute", is_flag=True,
              help="Set these limits on JOB's own budget (0: no limit) instead of adding them "
                   "to the budget JOB runs under.")
@click.option("--policy", type=click.Choice(["suspend", "fail"]), default=None,
              help="With --set: what a job does when the budget runs out.")
@url_option
@token_option
def budget(job: str, tokens: int | None, cost: float | None, steps: int | None,
           seconds: float | None, absolute: bool, policy: str | None, url: str | None,
           token: str | None) -> None:
    """Show JOB's budget, raise it (add --tokens/--cost/--steps/--seconds; held jobs resume)
    or --set it."""
    given: dict[str, Any] = {k: v for k, v in {"tokens": tokens, "cost": cost, "steps": steps,
                                               "seconds": seconds}.items() if v is not None}
    if policy is not None and not absolute:
        raise click.UsageError("--policy goes with --set")
    if not given and not absolute:
        data = _show_budget(job, url, token)
    else:
        if absolute:
            given["policy"] = policy
        data = _change_budget(job, given, absolute, url, token)
    lines = _budget_lines(data, data.get("held") if data else None)
    click.echo("\n".join(lines) if lines else f"{job} has no budget")


def _show_budget(job: str, url: str | None, token: str | None) -> Any:
    if url:
        return _run(lambda: _remote(url, token).get_budget(job))
    from statek.admission.budgets import budget_info
    from statek.server import views

    return _local_read(lambda: budget_info(views.fetch_job(job)))


def _change_budget(job: str, given: dict[str, Any], absolute: bool, url: str | None,
                   token: str | None) -> Any:
    client: Any
    if url:
        client = _remote(url, token)
        return _run(lambda: (client.set_budget if absolute else client.raise_budget)(
            job, **given))
    from statek.statek_client_api import StatekClientAPI

    _open_store("rw")
    try:
        client = StatekClientAPI()
        return _run(lambda: (client.set_budget if absolute else client.raise_budget)(
            job, **given))
    except ValueError as exc:  # a bad limit, nothing to raise: one line
        raise click.ClickException(str(exc)) from None
    finally:
        _store_closed()


@main.command()
@click.argument("job")
@url_option
@token_option
def tail(job: str, url: str | None, token: str | None) -> None:
    """Print JOB's console and status changes as they happen, until it is DONE."""
    if url:
        client = _remote(url, token)
        events = iter(_run(lambda: client.events(job)))
        while True:  # the stream's errors (unknown job, worker gone) come while reading it
            event = _run(lambda: next(events, None))
            if event is None or _show_event(event.kind, event.data):
                return
    _tail_local(job)


@main.command("dead-letters")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 20_000),
              help="The newest this many are listed.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON, items included.")
def dead_letters(limit: int, as_json: bool) -> None:
    """What the worker kept instead of applying, and why, oldest first: messages for missing
    or cancelled jobs, events no agent takes, damaged queue chunks, refused submits. Reads the
    store read-only (works while a worker runs)."""
    from statek.models.dead_letters import read_dead_letters
    from statek.store import current_prefix

    rows = _local_read(lambda: read_dead_letters(current_prefix(), limit))
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=repr))
        return
    if not rows:
        click.echo("no dead letters")
        return
    _print_rows(("at", "source", "kind", "target", "reason"),
                [(_when(r["at"]), r["source"], r["kind"], r["target"], r["reason"][:100])
                 for r in rows])


def _show_event(kind: str, data: dict[str, Any]) -> bool:
    """Print one event on stdout (the output asked for, e.g. `statek tail JOB > log`);
    True once the job is DONE."""
    if kind == "console":
        click.echo(str(data["text"]).rstrip("\n"))
    elif kind == "status":
        extra = ""
        if data["status"] == "DONE":
            extra = (f" error: {data['error']}" if data.get("error")
                     else f" exit_status: {json.dumps(data.get('exit_status'), default=str)}")
        click.echo(f"[{data['status']}]{extra}")
        return bool(data["status"] == "DONE")
    elif kind == "gap":
        click.echo(f"[gap: {data.get('reason')}]")
    return False


def _tail_local(job: str) -> None:
    """Follow a job in the embedded store read-only: wait for each commit (db0.wait)."""
    import dbzero as db0

    from statek.server import views
    from statek.store import current_prefix

    _open_store("r")
    try:
        prefix = current_prefix()
        shown, status = 0, None
        while True:
            state = db0.get_state_num(prefix)
            data = _api_error_line(lambda: views.job_detail(views.fetch_job(job)))
            for index in range(shown, len(data["console"])):
                _show_event("console", {"text": data["console"][index]})
            shown = len(data["console"])
            if data["status"] != status:
                status = data["status"]
                if _show_event("status", data):
                    return
            db0.wait(prefix, state + 1, 1000)
    finally:
        _store_closed()


if __name__ == "__main__":
    main()
