"""Per-user seeds: every random choice of a run (negatives, shuffles, random scores) is drawn
from (run seed, purpose, user id), so it is independent of user order, batching and resuming."""

from __future__ import annotations

import hashlib


def user_seed(seed: int, user_id: str, purpose: str) -> int:
    """A 64-bit seed from (run seed, purpose, user id): order-independent and resumable."""
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
