"""LoRA adapters made by `recllm tune`: which base model they belong to, checked before loading
(an adapter over the wrong base loads without complaint and answers nonsense)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from recllm.errors import RecllmError


def adapter_base(adapter: Path) -> tuple[str, str | None]:
    """(base model name, its revision or None) an adapter folder was made on: from the tune
    card next to it (recllm-tune.json), else peft's adapter_config.json."""
    from recllm.models import tuned_card

    for folder in (adapter, adapter.parent):
        card = tuned_card(folder)
        if card:
            return card["base"]["model"], card["base"]["revision"]
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError):
        raise RecllmError(f"no LoRA adapter at {adapter}", where="adapter",
                          hint="pass a folder written by `recllm tune` (…/models/<alias>/adapter)") from None
    return str(config.get("base_model_name_or_path")), None


def with_adapter(resolved, adapter: str):
    """`resolved` (the base asked for) with `adapter` over it; refused, naming both, when the
    adapter was made on another base model."""
    from recllm.models import folder_revision

    folder = Path(adapter).expanduser()
    if (folder / "adapter").is_dir() and not (folder / "adapter_config.json").exists():
        folder = folder / "adapter"  # the tuned model's folder was given
    name, revision = adapter_base(folder)
    same = resolved.revision == revision if revision else name in (resolved.name, resolved.path)
    if not same:
        raise RecllmError(f"adapter {folder} was made on base model {name}"
                          f"{f' (revision {revision})' if revision else ''}, not on {resolved.name} "
                          f"(revision {resolved.revision})", where="adapter",
                          hint=f"load it over {name}, or pass the tuned alias itself as the model")
    rev = hashlib.sha256(f"{resolved.revision}+{folder_revision(folder)}".encode()).hexdigest()[:16]
    return replace(resolved, adapter=str(folder), revision=rev, base=resolved.name)


def merge_adapter(model, adapter: str):
    """The base model with the LoRA weights folded in (peft's merge_and_unload)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise RecllmError("loading a LoRA adapter needs peft", hint="pip install 'recllm[tune]'") from None
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()
