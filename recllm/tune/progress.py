"""The training progress bar: steps, the latest training loss and examples per second."""

from __future__ import annotations

import time

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


class Progress(TrainerCallback):
    """A tqdm bar over optimizer steps, its postfix the last logged loss, eval loss and examples/s."""

    def __init__(self, examples_per_step: int, enabled: bool = True):
        self.per_step, self.enabled = examples_per_step, enabled
        self.bar, self.started, self.first_step, self.post = None, None, 0, {}

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="tuning", unit="step",
                            dynamic_ncols=True)
        self.started, self.first_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        seconds = max(time.perf_counter() - self.started, 1e-9)
        self.post["ex/s"] = f"{(state.global_step - self.first_step) * self.per_step / seconds:.2f}"
        self.bar.set_postfix(self.post, refresh=False)
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.post["loss"] = f"{logs['loss']:.4f}"
        if "eval_loss" in logs:
            self.post["val"] = f"{logs['eval_loss']:.4f}"

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TimeBudget(TrainerCallback, ExportableState):
    """Stops training (after a last checkpoint and validation) once `minutes` of training time
    are spent. The time spent is kept in each checkpoint's trainer_state.json (the Trainer's
    ExportableState), so a resumed run goes on counting from there."""

    def __init__(self, minutes: float, spent: float = 0.0):
        self.minutes, self.spent, self.since = minutes, spent, None

    def used(self) -> float:
        return self.spent + (time.perf_counter() - self.since if self.since is not None else 0.0)

    def state(self) -> dict:
        return {"args": {"minutes": self.minutes}, "attributes": {"spent": self.used()}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__) if state.stateful_callbacks else None
        if isinstance(saved, dict):  # resumed: the time already spent before the checkpoint
            self.spent = float(saved.get("attributes", {}).get("spent", 0.0))
        self.since = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.used() >= self.minutes * 60:
            control.should_training_stop = True
            control.should_save = control.should_evaluate = True
