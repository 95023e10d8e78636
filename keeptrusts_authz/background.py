"""Stopping background tasks: the one rule every worker loop's `close` uses."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[Any] | None, *, patience: float = 1.0) -> None:
    """Cancel `task` until it is done.

    One cancel is not enough: a cancel that lands inside a Redis call can come back as redis-py's
    timeout or connection error, which a worker loop catches and carries on from (it then sleeps
    and loops for ever, and the shutdown that awaits it hangs). Each further cancel lands at the
    task's next await, so repeating it ends the task; each attempt waits `patience` seconds.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=patience)
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s ended with %r", task.get_name(), task.exception())


__all__ = ["stop_task"]
