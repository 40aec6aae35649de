"""LoRA supervised fine-tuning with peft and the transformers Trainer; the loss counts the answer
tokens only (prompt tokens are labelled -100).

Prompt and answer are tokenized by the scoring boundary rule (recllm.backends.scoring.
split_tokens), so the answer tokens trained on are exactly the continuation that score mode
scores. Checkpoints go to <out>/checkpoints every `eval_steps` steps (validation loss on
held-out users, early stopping on it); `resume` goes on from the newest COMPLETE checkpoint
(one holding trainer_state.json, which the Trainer writes last), with the data order, RNG and
optimizer restored, so a killed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from recllm.errors import RecllmError, is_storage_error
from recllm.tune.examples import ExampleOptions

CHECKPOINTS = "checkpoints"


class TuneConfig(ExampleOptions):
    """A tune config (eval/configs/tune-*.yaml): the examples' options plus these."""

    alias: str                                # output: RECLLM_HOME/models/<alias>
    model: str = "smollm2-135m-instruct"      # base model: alias or folder
    dataset: str = "ml-1m"
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    # Llama-family names (SmolLM2, Qwen2, Llama); "all-linear" works only with lora_layers unset
    target_modules: list[str] | str = Field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    # LoRA on the top N layers only: the layers below need no backward pass (about half the
    # cost of a step on a CPU); None = every layer
    lora_layers: int | None = Field(None, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1                       # > 0 overrides epochs
    max_minutes: float | None = Field(None, gt=0)  # stop (checkpoint + validation) after this much training time
    eval_steps: int = Field(50, ge=1)         # validation + checkpoint every N steps
    early_stopping: int = Field(3, ge=0)      # evaluations without improvement; 0 = off
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int = Field(5, ge=1)
    max_length: int = Field(1024, ge=16)      # prompt + answer tokens; longer examples are cut on the left
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on CUDA or a CPU with bf16 units
    threads: int | None = None


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls at speed (elsewhere bf16 is emulated and slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(cfg: TuneConfig) -> tuple[str, str]:
    import torch

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.dtype != "auto":
        return device, cfg.dtype
    fast = device.startswith("cuda") and torch.cuda.is_bf16_supported() or device == "cpu" and cpu_has_bf16()
    return device, "bfloat16" if fast else "float32"


def tokenize(tokenizer, row: dict, model_name: str, max_length: int) -> dict:
    """input_ids = prompt + answer tokens; labels = -100 on the prompt, the answer's ids after."""
    from recllm.backends.scoring import split_tokens

    if row["chat"]:
        if not getattr(tokenizer, "chat_template", None):
            raise RecllmError(f"model {model_name!r} has no chat template (a base model?), but the tune "
                              "config's template writes chat messages", where="template",
                              hint="pick a completion-style template (e.g. completion) or an instruct model")
        text = tokenizer.apply_chat_template(json.loads(row["messages"]), tokenize=False, add_generation_prompt=True)
    else:
        text = row["prompt"]
    bound = split_tokens(tokenizer, text, [row["answer"]], raw=not row["chat"])
    prompt, answer = bound.prompt, bound.continuations[0]
    keep = max(0, max_length - len(answer))
    prompt = prompt[len(prompt) - keep:] if len(prompt) > keep else prompt
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


class Collator:
    """Right-pads a batch; padded positions get label -100 and attention 0."""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [self.pad] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [-100] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints holding trainer_state.json (written last), oldest first; others are removed
    (a run killed while saving leaves one half-written)."""
    good = []
    for ckpt in sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])):
        if (ckpt / "trainer_state.json").exists():
            good.append(ckpt)
        else:
            shutil.rmtree(ckpt, ignore_errors=True)
    return good


def load_base(cfg: TuneConfig):
    """(resolved base, model, tokenizer) in the training dtype on the training device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recllm.models import resolve

    base = resolve(cfg.model, fetch=True)
    if base.adapter:
        raise RecllmError(f"model {cfg.model!r} is itself a tuned adapter", where="model",
                          hint=f"tune its base model ({base.base}) instead")
    device, dtype = pick_device(cfg)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=getattr(torch, dtype)).to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return base, model, tokenizer, device, dtype


def train(cfg: TuneConfig, *, resume: bool = False, merge: bool = False, log=None,
          callbacks: list | None = None, progress: bool = True, dataset=None) -> dict[str, Any]:
    """Tune, save the adapter (+ merged weights) and the model card; returns the card's record.
    `dataset`: a RecDataset instead of loading `cfg.dataset` (tests, notebooks)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import EarlyStoppingCallback, PrinterCallback, TrainingArguments, set_seed

    from recllm.backends.cpu import idle_cores
    from recllm.data import load_dataset
    from recllm.models import model_dir
    from recllm.tune import card, examples
    from recllm.tune.progress import Progress, TimeBudget

    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = model_dir(cfg.alias)
    ckpt_dir = out / CHECKPOINTS
    if out.exists() and not resume and any(out.iterdir()):
        raise RecllmError(f"{out} already holds a tuned model or a run", where="alias",
                          hint="pass --resume to go on from its last checkpoint, or pick another alias")
    torch.set_num_threads(cfg.threads or idle_cores())
    dataset = dataset if dataset is not None else load_dataset(cfg.dataset, **cfg.dataset_options)
    train_rows, valid_rows, fp = examples.build(dataset, ExampleOptions(**_example_fields(cfg)), log=log)
    set_seed(cfg.seed)
    base, model, tokenizer, device, dtype = load_base(cfg)
    cols = train_rows.column_names
    enc = lambda row: tokenize(tokenizer, row, base.name, cfg.max_length)  # noqa: E731
    train_tok = train_rows.map(enc, remove_columns=cols, desc="tokenizing")
    valid_tok = valid_rows.map(enc, remove_columns=cols, desc="tokenizing")
    layers = model.config.num_hidden_layers
    top = list(range(max(0, layers - cfg.lora_layers), layers)) if cfg.lora_layers else None
    model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                             target_modules=cfg.target_modules, task_type="CAUSAL_LM",
                                             layers_to_transform=top))
    args = TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, eval_strategy="steps", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.eval_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
        # logging windows restart at every checkpoint, so a resumed run logs the same losses
        logging_steps=math.gcd(cfg.logging_steps, cfg.eval_steps), seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        use_cpu=device == "cpu", bf16=dtype == "bfloat16" and device.startswith("cuda"),
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False, lr_scheduler_type="linear",
        prediction_loss_only=True, label_names=["labels"])
    extra = [EarlyStoppingCallback(cfg.early_stopping)] if cfg.early_stopping else []
    budget = TimeBudget(cfg.max_minutes) if cfg.max_minutes else None
    extra += [budget] if budget else []
    bar = Progress(cfg.batch_size * cfg.grad_accum, enabled=progress)
    trainer = SafeTrainer(model=model, args=args, train_dataset=train_tok, eval_dataset=valid_tok,
                          data_collator=Collator(tokenizer.pad_token_id), callbacks=[bar, *extra, *(callbacks or [])])
    trainer.remove_callback(PrinterCallback)  # the bar shows the losses
    last = complete_checkpoints(ckpt_dir) if resume and ckpt_dir.exists() else []
    if resume and last:
        log(f"resuming from {last[-1].name}")
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(last[-1]) if last else None)
    seconds = time.perf_counter() - started
    bar.close()
    final_eval = trainer.evaluate()
    adapter = out / "adapter"
    with _storage(adapter):
        trainer.model.save_pretrained(str(adapter))
        tokenizer.save_pretrained(str(adapter))
    record = card.record(cfg, base, fp, trainer.state, final_eval, seconds, len(train_rows), len(valid_rows),
                         device, dtype, resumed_from=last[-1].name if last else None)
    if budget:  # training time over every resumed part, as the budget counted it
        record["training_seconds"] = round(budget.used(), 1)
        record["stopped_by_time"] = trainer.state.global_step < trainer.state.max_steps
    if merge:
        merged = out / "merged"
        with _storage(merged):
            trainer.model.merge_and_unload().save_pretrained(str(merged))
            tokenizer.save_pretrained(str(merged))
        record["merged"] = "merged"
    card.write(out, record, trainer.state.log_history)
    log(f"tuned model {cfg.alias!r} in {out} (final validation loss {final_eval['eval_loss']:.4f}, "
        f"{trainer.state.global_step} steps, {seconds:.0f} s)")
    return record


def _example_fields(cfg: TuneConfig) -> dict:
    return {k: getattr(cfg, k) for k in ExampleOptions.model_fields}


class _storage:
    """A full or unwritable disk while saving: one RecllmError, the half-written folder removed."""

    def __init__(self, folder: Path, keep: str | None = None):
        self.folder, self.keep = folder, keep

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, OSError) or not is_storage_error(exc):
            return False
        shutil.rmtree(self.folder, ignore_errors=True)
        kept = f"; the last good checkpoint {self.keep} is kept" if self.keep else ""
        raise RecllmError(f"cannot write {self.folder}: {exc.strerror or exc}{kept}",
                          hint="free disk space (or point RECLLM_HOME elsewhere) and rerun with --resume") from None


def _trainer_base():
    from transformers import Trainer

    return Trainer


class SafeTrainer(_trainer_base()):
    """A Trainer whose failed checkpoint save (disk full) removes the half-written checkpoint,
    keeps the previous one, and says so in one RecllmError."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Mean cross-entropy over the answer tokens, with the vocabulary projection computed at
        those positions only (the prompt's logits would be thrown away: a fifth of the work)."""
        import torch.nn.functional as F

        base = model.get_base_model()
        hidden = base.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        target = inputs["labels"][:, 1:]
        mask = target != -100
        logits = base.lm_head(hidden[:, :-1][mask]).float()
        loss = F.cross_entropy(logits, target[mask])
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        import torch

        with torch.no_grad():
            loss = self.compute_loss(model, self._prepare_inputs(inputs))
        return loss.detach(), None, None

    def _save_checkpoint(self, model, trial):
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        good = complete_checkpoints(folder.parent) if folder.parent.exists() else []
        keep = good[-1].name if good else None
        from transformers.trainer_callback import ExportableState

        for cb in self.callback_handler.callbacks:  # resumed from a checkpoint made without it
            if isinstance(cb, ExportableState):
                self.state.stateful_callbacks.setdefault(type(cb).__name__, cb.state())
        with _storage(folder, keep=keep or "(none yet)"):
            return super()._save_checkpoint(model, trial)
