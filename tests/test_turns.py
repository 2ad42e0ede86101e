"""take_turn: a burst of calls on one loop starts a bounded number per loop turn."""

from __future__ import annotations

import asyncio
import itertools

from dspex_actors._turns import STARTS_PER_TURN, take_turn


async def _count_starts_per_turn(burst: int, cancel: int = 0) -> tuple[list[int], int]:
    """Start ``burst`` tasks at once (cancelling the ``cancel`` last ones while they wait);
    the number of starts seen at each turn of a ticking callback, and the total started."""
    loop = asyncio.get_running_loop()
    started: list[int] = []
    turns: list[int] = []
    finished = asyncio.Event()

    def tick() -> None:
        turns.append(len(started))
        if not finished.is_set():
            loop.call_soon(tick)

    async def call(index: int) -> None:
        await take_turn()
        started.append(index)

    tasks = [asyncio.ensure_future(call(i)) for i in range(burst)]
    loop.call_soon(tick)
    await asyncio.sleep(0)
    for task in tasks[burst - cancel :]:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    finished.set()
    return [b - a for a, b in itertools.pairwise(turns)], len(started)


def test_a_burst_starts_a_few_per_turn_in_order() -> None:
    steps, total = asyncio.run(_count_starts_per_turn(STARTS_PER_TURN * 8))
    assert total == STARTS_PER_TURN * 8
    assert max(steps) <= STARTS_PER_TURN
    assert sum(1 for step in steps if step) >= 7  # spread over the turns


def test_cancelled_waiters_are_skipped() -> None:
    burst = STARTS_PER_TURN * 4
    _, total = asyncio.run(_count_starts_per_turn(burst, cancel=STARTS_PER_TURN))
    assert total == burst - STARTS_PER_TURN


def test_a_lone_call_starts_at_once() -> None:
    async def main() -> bool:
        task = asyncio.ensure_future(take_turn())
        await asyncio.sleep(0)  # one step of the task: it must be done already
        return task.done()

    assert asyncio.run(asyncio.wait_for(main(), 5))
