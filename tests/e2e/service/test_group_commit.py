"""The HTTP API's group commit: write requests answered together share one commit, a request
still being read is waited for (within a bound), and a commit someone else made is reused."""

from __future__ import annotations

import asyncio

import dbzero as db0
import pytest

import statek
from statek.server.commit import GroupCommitter

BOUND_S = 30.0  # failure bound only


def _counting() -> tuple[list[int], GroupCommitter]:
    made: list[int] = []
    return made, GroupCommitter(lambda: made.append(1), window=0.0)


async def _write(committer: GroupCommitter) -> None:
    committer.started()
    committer.finished()
    await committer.durable()


def test_writes_answered_together_share_one_commit() -> None:
    made, committer = _counting()

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(_write(committer) for _ in range(5))), BOUND_S)

    asyncio.run(main())
    assert made == [1] and committer.commits == 1


def test_commit_waits_for_a_write_request_still_being_read() -> None:
    made, committer = _counting()

    async def main() -> None:
        committer.started()  # a second request: its body is not read yet
        first = asyncio.create_task(_write(committer))
        for _ in range(20):  # many loop turns: the commit must not run without it
            await asyncio.sleep(0)
        assert not first.done() and made == []

        async def second_request_read() -> None:
            committer.finished()
            await committer.durable()

        await asyncio.wait_for(asyncio.gather(first, second_request_read()), BOUND_S)

    asyncio.run(main())
    assert made == [1]


def test_a_request_never_asking_delays_the_commit_only_up_to_the_bound() -> None:
    made: list[int] = []
    committer = GroupCommitter(lambda: made.append(1), window=0.0, max_delay=0.01)

    async def main() -> None:
        committer.started()  # a slow upload that never finishes
        await asyncio.wait_for(_write(committer), BOUND_S)

    asyncio.run(main())
    assert made == [1] and committer.writers == 1


def test_a_failed_commit_is_raised_to_every_waiter() -> None:
    def broken() -> None:
        raise OSError("disk full")

    committer = GroupCommitter(broken, window=0.0)

    async def main() -> list[BaseException | None]:
        return await asyncio.wait_for(asyncio.gather(
            *(_write(committer) for _ in range(3)), return_exceptions=True), BOUND_S)

    assert [str(e) for e in asyncio.run(main())] == ["disk full"] * 3


def test_a_commit_made_meanwhile_is_not_repeated(statek_store: str) -> None:
    made: list[int] = []
    committer = GroupCommitter(lambda: made.append(1), statek_store, window=0.0)

    async def main() -> None:
        statek.Agent("somebody")  # a write in the open transaction
        task = asyncio.create_task(_write(committer))
        await asyncio.sleep(0)  # it asked for durability
        db0.commit()  # the worker loop's group commit
        await asyncio.wait_for(task, BOUND_S)
        statek.Agent("another")
        await asyncio.wait_for(_write(committer), BOUND_S)  # not committed by anyone: commits

    asyncio.run(main())
    assert committer.skipped == 1 and made == [1]


@pytest.mark.parametrize("count", [1, 3])
def test_every_waiter_returns(count: int) -> None:
    made, committer = _counting()

    async def main() -> None:
        for _ in range(count):  # one after another: one commit each
            await asyncio.wait_for(_write(committer), BOUND_S)

    asyncio.run(main())
    assert made == [1] * count
