"""Integration: the openai backend against a real `transformers serve` on loopback, serving a
tiny random Llama from a local folder (the same protocol as `vllm serve`). `transformers serve
FOLDER` pins the server to that folder, and the request's `model` field must be that path."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tiny_llm import build_tiny_model

from recllm.backends import GenerationRequest, SamplingParams, get_backend
from recllm.cache import CachedBackend


def _cli() -> str | None:
    beside = Path(sys.executable).parent / "transformers"
    return str(beside) if beside.exists() else shutil.which("transformers")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    cli = _cli()
    if cli is None:
        pytest.skip("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    folder = build_tiny_model(tmp_path_factory.mktemp("served") / "tiny")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as sink:
        proc = subprocess.Popen([cli, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--log-level", "warning"],
                                stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not healthy after 120 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield folder, f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_chat_and_completions_against_transformers_serve(served, tmp_path):
    folder, url = served
    backend = get_backend("openai", model=str(folder), base_url=url, timeout=60, max_retries=1, concurrency=2)
    requests = [
        GenerationRequest(messages=({"role": "user", "content": "recommend movies like heat"},), key="u1",
                          params=SamplingParams(max_tokens=5)),
        GenerationRequest(prompt="toy story and fargo", key="u2", params=SamplingParams(max_tokens=4)),
        GenerationRequest(messages=({"role": "user", "content": "star wars"},), key="u3",
                          params=SamplingParams(max_tokens=5)),
    ]
    out = backend.generate(requests)
    assert [r.error for r in out] == [None, None, None], [r.error for r in out]
    assert all(isinstance(r.text, str) for r in out)
    assert all(r.completion_tokens is None or r.completion_tokens <= 5 for r in out)
    # The server applied the same chat template as the in-process backend: greedy text agrees.
    local = get_backend("transformers", model=str(folder)).generate([requests[0]])[0]
    assert out[0].text.strip() == local.text.strip()
    # A cached re-run sends nothing to the server.
    cached = CachedBackend(backend, tmp_path / "c.sqlite")
    cached.generate(requests)
    again = cached.generate(requests)
    assert all(r.cached for r in again) and cached.stats.hits == 3


def test_wrong_model_name_is_a_recorded_http_error(served):
    _, url = served
    out = get_backend("openai", model="not-the-served-model", base_url=url, max_retries=0).generate(
        [GenerationRequest(prompt="heat", params=SamplingParams(max_tokens=2))])
    assert out[0].error and "HTTP 4" in out[0].error
