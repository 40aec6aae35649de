"""Bounds on decompression, so a small archive or .gz cannot fill the disk or the memory.

Two limits, each raised with an environment variable (read at each use, so a test or a shell
can change it): `RECLLM_MAX_EXTRACT_BYTES` (default 8 GiB: the total a zip extracts to, or
one .gz decompresses to; suffixes K, M, G, T allowed) and `RECLLM_MAX_COMPRESSION_RATIO`
(default 200: decompressed / compressed size; real tables compress 3-20x, zip bombs ~1000x).
The ratio is only judged beyond RATIO_FLOOR bytes, so tiny repetitive files pass.
"""

from __future__ import annotations

import os
import re

from recllm.errors import RecllmError

BYTES_VAR, RATIO_VAR = "RECLLM_MAX_EXTRACT_BYTES", "RECLLM_MAX_COMPRESSION_RATIO"
DEFAULT_BYTES, DEFAULT_RATIO = 8 << 30, 200.0
RATIO_FLOOR = 64 << 20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def max_bytes() -> int:
    text = os.environ.get(BYTES_VAR)
    if not text:
        return DEFAULT_BYTES
    match = _SIZE.match(text)
    if not match:
        raise RecllmError(f"{BYTES_VAR}={text!r} is not a size", hint="e.g. 20000000000 or 20G")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def max_ratio() -> float:
    text = os.environ.get(RATIO_VAR)
    try:
        return float(text) if text else DEFAULT_RATIO
    except ValueError:
        raise RecllmError(f"{RATIO_VAR}={text!r} is not a number", hint="e.g. 500") from None


def check(total: int, compressed: int, where: str) -> None:
    """Refuse `total` decompressed bytes (so far) from `compressed` input bytes."""
    limit = max_bytes()
    if total > limit:
        raise RecllmError(f"decompresses to more than {limit:,} bytes (the extraction limit)", where=where,
                          hint=f"if the file is genuine, raise the limit: {BYTES_VAR}=<bytes, e.g. 20G>")
    ratio = max_ratio()
    if total > RATIO_FLOOR and total > ratio * max(compressed, 1):
        raise RecllmError(f"compression ratio above {ratio:g}:1 ({total:,} bytes from {compressed:,}); "
                          "this looks like a decompression bomb", where=where,
                          hint=f"if the file is genuine, raise the limit: {RATIO_VAR}=<ratio, e.g. 2000>")
