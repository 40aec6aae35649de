"""Concurrent requests -> backend batches, with a bounded queue and a timeout per request.

A request waits in a queue of at most `max_queue` (full: `QueueFull`, the server answers 503
with Retry-After; never an unbounded backlog). One worker takes the first waiting request,
gathers more for up to `window_s` or until `max_batch`, and runs the batch in a single
background thread (the engine is used by one thread only, and the event loop stays free to
answer /healthz, /metrics and refusals meanwhile). Requests that gave up (timeout, client
gone) before their batch started are skipped; a batch already running finishes, and its
late answers are dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

POLL_S = 0.001  # how often the gathering worker looks at the queue within a window


class QueueFull(Exception):
    """The queue holds `max_queue` requests already."""


class Batcher:
    """`await submit(item, timeout)` -> the item's result from `run_batch(items)`, which returns
    one result (or exception) per item, in order."""

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], *, max_batch: int = 8,
                 window_s: float = 0.01, max_queue: int = 64,
                 on_batch: Callable[[int], None] | None = None):
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and window_s >= 0")
        self.run_batch, self.max_batch, self.window_s, self.max_queue = run_batch, max_batch, window_s, max_queue
        self.on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.busy = False

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="recllm-backend")
        self._task = asyncio.create_task(self._work(), name="recllm-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: Any, timeout: float) -> Any:
        """The item's result; QueueFull at once when the queue is full; TimeoutError after
        `timeout` seconds in all (waiting and running)."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        fut = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are waiting already") from None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            if not fut.done():
                fut.cancel()  # skipped if its batch has not started yet

    async def _gather(self) -> list[tuple[Any, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        while len(batch) < self.max_batch:
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            if len(batch) >= self.max_batch or loop.time() >= deadline:
                break
            await asyncio.sleep(min(POLL_S, max(deadline - loop.time(), 0)))
        return [(item, fut) for item, fut in batch if not fut.done()]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            self.busy = True
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [i for i, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
            except Exception as exc:  # the whole batch failed: every request gets the error
                results = [exc] * len(batch)
            finally:
                self.busy = False
            for (_, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
