"""stop_task ends a worker loop even when a cancel is swallowed inside a call it makes."""

import asyncio
import contextlib

from keeptrusts_authz.background import stop_task


def test_a_loop_that_swallows_a_cancel_still_stops() -> None:
    swallowed = 0

    async def store_call() -> None:
        # What redis-py can do with a cancel that lands mid-command: report a timeout instead.
        # Only the first time: the race is rare, the loop then spends its time in its sleep.
        nonlocal swallowed
        try:
            await asyncio.sleep(3600 if swallowed == 0 else 0)
        except asyncio.CancelledError:
            swallowed += 1
            raise TimeoutError("Timeout reading from socket") from None

    async def worker() -> None:
        while True:  # a worker loop that survives store errors
            with contextlib.suppress(TimeoutError):
                await store_call()
            await asyncio.sleep(3600)  # the loop's interval

    async def go() -> bool:
        task = asyncio.create_task(worker())
        await asyncio.sleep(0.01)
        await asyncio.wait_for(stop_task(task, patience=0.05), timeout=5)
        return task.cancelled()

    assert asyncio.run(go()) is True
    assert swallowed >= 1


def test_none_and_finished_tasks_are_fine() -> None:
    async def go() -> None:
        await stop_task(None)
        done = asyncio.create_task(asyncio.sleep(0))
        await done
        await stop_task(done)

    asyncio.run(go())
