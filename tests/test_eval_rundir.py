"""The run folder under faults: a second writer, a stale lock, a file where a folder should be,
an unwritable folder, a full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from recllm.cli import main
from recllm.errors import RecllmError
from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import JsonlAppender, RunLock, read_records


def _cfg(tmp_path, **kw):
    base = dict(dataset="tiny", model=None, users=None, max_history=None, progress=False,
                output=str(tmp_path / "run"), ks=[1, 5], ci_resamples=20)
    return EvalConfig(**{**base, **kw})


def test_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    with RunLock(run, log=lambda m: None):
        with pytest.raises(RecllmError, match=r"another run is writing this folder \(pid"):
            run_eval(_cfg(tmp_path), dataset=tiny_dataset, log=lambda m: None)
    # released: the run goes through, and leaves the lock empty
    [done] = run_eval(_cfg(tmp_path), dataset=tiny_dataset, log=lambda m: None)
    assert len(read_records(done / "samples.jsonl")) == 4
    assert (done / ".lock").read_text() == ""


def test_lock_held_by_another_process(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; from pathlib import Path; from recllm.evaluate.rundir import RunLock\n"
            f"l = RunLock(Path({str(run)!r}), log=print).__enter__(); print('held', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RecllmError, match=f"pid {holder.pid} on"):
            RunLock(run).__enter__()
    finally:
        holder.kill()
        holder.wait()
    notes = []
    with RunLock(run, log=notes.append):   # the holder died: its lock is taken over, with a note
        pass
    assert notes and f"pid {holder.pid}" in notes[0]


def test_output_that_is_a_file_or_unwritable(tmp_path, capsys, tiny_dataset):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(RecllmError, match="is a file, not a folder"):
        run_eval(_cfg(tmp_path, output=str(target)), dataset=tiny_dataset, log=lambda m: None)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(RecllmError, match="cannot write"):
            run_eval(_cfg(tmp_path, output=str(locked / "run")), dataset=tiny_dataset,
                     log=lambda m: None)


def test_full_disk_is_one_line(tmp_path, monkeypatch):
    app = JsonlAppender(tmp_path / "s.jsonl")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecllmError, match="No space left on device.*\n.*--resume"):
        app.write([{"a": 1}])
    app.close()


def test_plots_folder_that_is_a_file(tmp_path, capsys, tiny_dataset):
    [run] = run_eval(_cfg(tmp_path), dataset=tiny_dataset, log=lambda m: None)
    taken = tmp_path / "plots"
    taken.write_text("x")
    assert main(["report", str(run), "--plots", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is a file" in err and "Traceback" not in err
