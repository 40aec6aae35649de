"""In-context demonstrations from a source dataset: other users' (history -> next item)
examples put into the prompt (rank-icl style), often from another domain (`demos_from: ml-1m`
while evaluating books), so the model sees the task done before it answers.

Each demonstration is one source user's training interactions only (everything before their
validation target: no held-out item of anyone), the last `history` of them shown and the one
after them as "next". Choices are seeded per evaluated user (recllm.seeding), never take the
evaluated user themself, and never contain the evaluated user's target, by id or by title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.prompting.context import PromptItem, catalog_items, verbs_for
from recllm.seeding import user_seed


@dataclass(frozen=True)
class Demo:
    """One demonstration as templates see it: `history` (oldest first) then `next`."""

    user_id: str
    history: tuple[PromptItem, ...]
    next: PromptItem


class DemoPool:
    """Every source user who can give a demonstration, and the seeded draw per evaluated user."""

    def __init__(self, source: RecDataset, *, history: int = 5, seed: int = 0):
        from recllm.data import leave_one_out

        self.source, self.seed = source, seed
        items = catalog_items(source.catalog)
        # A validation case's full history stops before both held-out items of that user.
        self._pool: list[tuple[str, tuple[str, ...]]] = [
            (c.user_id, tuple(c.history[-(history + 1):])) for c in leave_one_out(
                source, max_history=None, min_history=1).valid if len(c.history) >= 2]
        if not self._pool:
            raise RecllmError(f"no user of {source.name!r} has the 4+ interactions a "
                              "demonstration needs (2 before their held-out items)", where="demos_from",
                              hint="name a dataset with longer histories")
        self._items = items
        self.domain, self.domain_plural = source.domain, source.domain_plural

    @property
    def verb_past(self) -> str:
        return verbs_for(self.domain)[1]

    def __len__(self) -> int:
        return len(self._pool)

    def draw(self, case: UserCase, n: int, target_title: str | None = None) -> tuple[Demo, ...]:
        """`n` demonstrations for `case`, the same on every run and machine."""
        rng = np.random.default_rng(user_seed(self.seed, case.user_id, "demos"))
        chosen: list[Demo] = []
        banned_title = (target_title or "").casefold()
        for i in rng.permutation(len(self._pool)):
            user, seq = self._pool[i]
            if user == case.user_id:
                continue
            shown = [self._items[x] for x in seq]
            if any(x == case.target or (banned_title and it.title.casefold() == banned_title)
                   for x, it in zip(seq, shown)):
                continue
            chosen.append(Demo(user, _numbered(shown[:-1]), _numbered(shown[-1:])[0]))
            if len(chosen) == n:
                break
        return tuple(chosen)


def _numbered(items: Sequence[PromptItem]) -> tuple[PromptItem, ...]:
    from dataclasses import replace

    return tuple(replace(it, position=i + 1) for i, it in enumerate(items))


def draw_demos(pool: DemoPool, cases: Sequence[UserCase], dataset: RecDataset, n: int
               ) -> dict[str, tuple[Demo, ...]]:
    """Each evaluated user's demonstrations (user id -> demos)."""
    return {c.user_id: pool.draw(c, n, dataset.catalog.get(c.target)) for c in cases}
