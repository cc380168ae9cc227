"""The `statek` command line."""

from __future__ import annotations

import click

from statek._version import __version__


@click.group()
@click.version_option(__version__, prog_name="statek")
def main() -> None:
    """statek: durable LLM agents in dbzero."""


@main.command()
@click.option("--helpers", default=200, show_default=True,
              help="Helper jobs the dispatcher delegates to.")
@click.option("--concurrency", default=100, show_default=True, help="max_concurrency.")
def demo(helpers: int, concurrency: int) -> None:
    """Run a small fleet end to end over the embedded store with the offline provider."""
    from statek._speedups import IMPLEMENTATION
    from statek.demo import describe, run_demo
    from statek.store import settings

    cfg = settings()
    click.echo(f"statek {__version__}: store {cfg.data_dir}/{cfg.default_prefix}, "
               f"provider scripted (offline), scheduler kernels: {IMPLEMENTATION}")
    for line in describe(run_demo(helpers, concurrency)):
        click.echo(line)


def _log_to_stderr() -> None:
    """The worker's log (its "worker ready" line, shutdown, failures) at STATEK_LOG_LEVEL."""
    import logging

    from statek.store import settings

    logging.basicConfig(level=settings().log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--concurrency", default=100, show_default=True, help="max_concurrency.")
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
def worker(concurrency: int, provider: str | None, offline: bool, until_idle: bool,
           modules: tuple[str, ...]) -> None:
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

    if offline:
        if provider not in (None, "scripted"):
            raise click.UsageError(f"--offline answers every call offline; drop --provider "
                                   f"{provider}")
        from statek.providers import use_offline

        provider = use_offline()
        click.echo("offline: every model call is answered by the scripted provider")
    _log_to_stderr()
    statek.open_default_store()
    stats = statek.start_statek(max_concurrency=concurrency, provider=provider,
                                auto_terminate=until_idle)
    click.echo(f"worker stopped: {stats.steps_done} steps, {stats.jobs_completed} jobs done")
    statek.close()


if __name__ == "__main__":
    main()
