"""LoopInbox: ordered, batched hand-offs to an event loop from other threads."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from dspex_actors._inbox import PER_TURN, LoopInbox, inbox_for


def test_callbacks_run_in_order_in_bounded_turns() -> None:
    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        inbox = LoopInbox(loop)
        ran: list[int] = []
        turns: list[int] = []  # how many callbacks had run at each tick of a timer
        done = asyncio.Event()
        count = PER_TURN * 5

        def tick() -> None:
            turns.append(len(ran))
            if not done.is_set():
                loop.call_soon(tick)

        def put_all() -> None:
            for i in range(count):
                inbox.put(ran.append, i)
            inbox.put(done.set)

        loop.call_soon(tick)
        thread = threading.Thread(target=put_all)
        thread.start()
        await asyncio.wait_for(done.wait(), 10)
        thread.join(10)
        return ran, turns

    ran, turns = asyncio.run(main())
    assert ran == list(range(PER_TURN * 5))
    steps = [b - a for a, b in itertools.pairwise(turns)]
    assert max(steps) <= PER_TURN  # other work ran between the batches


def test_a_closed_loop_refuses_and_one_inbox_per_loop() -> None:
    loop = asyncio.new_event_loop()
    assert inbox_for(loop) is inbox_for(loop)
    inbox = inbox_for(loop)
    loop.close()
    with pytest.raises(RuntimeError):
        inbox.put(print, "never")
