"""Where generation runs. `local` (the default) is this process (recllm.evaluate.pipeline);
`ray` hands the prompts to Ray Data actors, one engine each (recllm.executors.ray_data).
Everything else (rendering, grounding, scoring, the run folder, the cache) stays in the driver,
so a run gives the same samples.jsonl whichever executor answered it."""

from __future__ import annotations

from typing import Any


def ray_answer(*args: Any, **kwargs: Any):
    """`runner._answer` for `executor: ray` (see recllm.executors.ray_data.answer)."""
    from recllm.executors.ray_data import answer

    return answer(*args, **kwargs)
