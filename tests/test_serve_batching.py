"""recllm.serve.batching: requests gathered into batches, a bounded queue, per-request
timeouts, per-item and whole-batch failures."""

from __future__ import annotations

import asyncio
import threading

import pytest

from recllm.serve.batching import Batcher, QueueFull


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_in_order():
    sizes = []

    async def main():
        b = Batcher(lambda items: [x * 10 for x in items], max_batch=4, window_s=0.05, on_batch=sizes.append)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i, timeout=5) for i in range(10)))
        finally:
            await b.stop()

    assert run(main()) == [i * 10 for i in range(10)]
    assert sizes == [4, 4, 2]


def test_per_item_errors_and_whole_batch_failures():
    def flaky(items):
        if "boom" in items:
            raise RuntimeError("engine down")
        return [ValueError("bad item") if x == "bad" else x for x in items]

    async def main():
        b = Batcher(flaky, max_batch=2, window_s=0.02)
        await b.start()
        try:
            ok, bad = await asyncio.gather(b.submit("ok", 5), b.submit("bad", 5), return_exceptions=True)
            boom = await asyncio.gather(b.submit("boom", 5), return_exceptions=True)
            after = await b.submit("fine", 5)
            return ok, bad, boom[0], after
        finally:
            await b.stop()

    ok, bad, boom, after = run(main())
    assert ok == "ok" and isinstance(bad, ValueError) and isinstance(boom, RuntimeError) and after == "fine"


def test_full_queue_refuses_at_once_and_timeouts_are_skipped():
    gate, seen = threading.Event(), []

    def held(items):
        gate.wait(5)
        seen.extend(items)
        return items

    async def main():
        b = Batcher(held, max_batch=1, window_s=0, max_queue=2)
        await b.start()
        try:
            first = asyncio.create_task(b.submit("running", 5))
            while not b.busy:
                await asyncio.sleep(0.001)
            late = asyncio.create_task(b.submit("gives up", 0.02))
            queued = asyncio.create_task(b.submit("queued", 5))
            await asyncio.sleep(0.001)
            with pytest.raises(QueueFull):
                await b.submit("one too many", 5)
            with pytest.raises(TimeoutError):
                await late
            gate.set()
            return await first, await queued
        finally:
            await b.stop()

    assert run(main()) == ("running", "queued")
    assert seen == ["running", "queued"]  # the request that timed out never reached the engine


def test_options_are_checked():
    with pytest.raises(ValueError):
        Batcher(lambda items: items, max_batch=0)
