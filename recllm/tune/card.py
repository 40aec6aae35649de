"""The tuned model's card: recllm-tune.json (machine-readable: what `recllm models` and the
backends read), README.md (for people) and loss.png (training and validation loss)."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recllm import __version__
from recllm.models import TUNE_FILE  # recllm.models reads it to register the alias


def record(cfg, base, fingerprint: str, state, final_eval: dict, seconds: float, n_train: int, n_valid: int,
           device: str, dtype: str, resumed_from: str | None = None) -> dict[str, Any]:
    """Everything the card says, as one JSON-ready dict."""
    per_step = {}  # one per checkpoint (the final evaluate() repeats the last step's)
    for h in state.log_history:
        if "eval_loss" in h:
            per_step.setdefault(h["step"], round(h["eval_loss"], 6))
    evals = [{"step": step, "eval_loss": loss} for step, loss in per_step.items()]
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return {
        "alias": cfg.alias, "kind": "lora", "adapter": "adapter",
        "base": {"model": base.name, "path": base.path, "revision": base.revision, "source": base.source},
        "data": {"dataset": cfg.dataset, "dataset_options": cfg.dataset_options, "examples": n_train,
                 "valid_examples": n_valid, "examples_fingerprint": fingerprint, "rank_ratio": cfg.rank_ratio},
        "template": cfg.template, "rank_template": cfg.rank_template if cfg.rank_ratio else None,
        "seed": cfg.seed, "steps": state.global_step,
        # fewer than `examples` when stopped early (time budget, early stopping)
        "examples_seen": state.global_step * cfg.batch_size * cfg.grad_accum,
        "epoch": round(state.epoch or 0, 4),
        "final_train_loss": losses[-1] if losses else None, "final_eval_loss": round(final_eval["eval_loss"], 6),
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "validation": evals, "seconds": round(seconds, 1), "device": device, "dtype": dtype,
        "resumed_from": resumed_from, "config": cfg.model_dump(), "recllm": __version__,
        "machine": platform.machine(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "llamacpp": "not converted: no offline HF -> GGUF converter here (llama.cpp's convert_hf_to_gguf.py "
                    "is not packaged); use the transformers backend, or serve merged/ for the openai backend",
    }


def write(folder: Path, rec: dict[str, Any], history: list[dict]) -> None:
    plot(folder / "loss.png", history)
    (folder / "README.md").write_text(markdown(rec))
    (folder / TUNE_FILE).write_text(json.dumps(rec, indent=2))  # last: its presence means "complete"


def plot(path: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    valid = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    for points, label in ((train, "training loss"), (valid, "validation loss (held-out users)")):
        if points:
            ax.plot(*zip(*points), marker="o" if label.startswith("val") else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rec: dict[str, Any]) -> str:
    b, d = rec["base"], rec["data"]
    rows = "\n".join(f"| {v['step']} | {v['eval_loss']:.4f} |" for v in rec["validation"])
    return f"""# {rec['alias']}

A LoRA adapter made by `recllm tune` (recllm {rec['recllm']}, {rec['created']}).

- base model: `{b['model']}` (revision `{b['revision']}`, {b['source']})
- data: `{d['dataset']}`, {d['examples']} training examples (ranking share {d['rank_ratio']}), {d['valid_examples']}
  validation examples from held-out users; examples fingerprint `{d['examples_fingerprint']}`
- template: `{rec['template']}`{f", ranking template `{rec['rank_template']}`" if rec['rank_template'] else ''}
- steps: {rec['steps']} (epoch {rec['epoch']}, {rec.get('examples_seen')} examples seen), seed {rec['seed']}, {rec.get('training_seconds', rec['seconds'])} s of training on {rec['device']} ({rec['dtype']})
- final training loss {rec['final_train_loss']}, final validation loss {rec['final_eval_loss']}
  (best checkpoint {rec['best_checkpoint']}, loaded at the end)
- llama.cpp: {rec['llamacpp']}

![loss curve](loss.png)

| checkpoint step | validation loss |
|---:|---:|
{rows}

Load it with `recllm eval --model {rec['alias']}` (transformers backend: base + adapter).
"""
