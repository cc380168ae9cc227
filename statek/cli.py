"""The `statek` command line."""

from __future__ import annotations

import click

from statek._version import __version__


@click.group()
@click.version_option(__version__, prog_name="statek")
def main() -> None:
    """statek: durable LLM agents in dbzero."""


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="dbzero root (default: STATEK_DATA_DIR or ./statek-data).")
@click.option("--jobs", default=1000, show_default=True, help="Jobs to submit.")
def demo(data_dir: str | None, jobs: int) -> None:
    """Submit agents, jobs and messages into the embedded store and report what is stored."""
    import time

    import dbzero as db0

    import statek
    from statek.models.status import JobStatus

    root, prefix = statek.open_default_store(data_dir)
    agent = statek.Agent("demo-worker", "You answer with Python code.")
    api = statek.StatekClientAPI()
    start = time.perf_counter()
    ids = api.submit_new_job_ids(agent, [{"n": i} for i in range(jobs)])
    elapsed = time.perf_counter() - start
    api.push_message(ids[0], "hello")
    click.echo(f"store {root}/{prefix}: submitted {jobs} jobs in {elapsed * 1000:.0f} ms "
               f"({elapsed / max(jobs, 1) * 1e6:.0f} µs/job)")
    click.echo(f"persisted: {len(db0.find(statek.Agent))} agents, "
               f"{len(db0.find(statek.Job))} jobs "
               f"({len(db0.find(statek.Job, JobStatus.READY))} READY), "
               f"{statek.StatekPushQueue().message_count()} queued messages")
    statek.close()


if __name__ == "__main__":
    main()
