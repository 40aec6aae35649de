"""The backend registry and the scripted backend (re-scoring saved outputs)."""

from __future__ import annotations

import json
import sys

import pytest

from recllm.backends import (
    BACKENDS,
    GenerationRequest,
    SamplingParams,
    backend_class,
    cut_at_stop,
    get_backend,
)
from recllm.errors import RecllmError


def req(key, stop=()):
    return GenerationRequest(messages=({"role": "user", "content": "x"},), key=key,
                             params=SamplingParams(stop=stop))


def test_registry_is_lazy_and_suggests_names():
    for name in BACKENDS:
        assert backend_class(name).name == name
    assert backend_class("hf") is backend_class("transformers")
    with pytest.raises(RecllmError, match="did you mean 'transformers'"):
        get_backend("transfomers")


def test_importing_backends_pulls_no_heavy_dependency():
    import subprocess

    code = ("import sys, recllm.backends, recllm.cache, recllm.models; "
            "import recllm.backends.vllm_llm, recllm.backends.openai_http, recllm.backends.scripted; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("a\n\nb END c", ("END", "\n\n")) == ("a", True)
    assert cut_at_stop("abc", ("x", "")) == ("abc", False)


def test_scripted_from_samples_jsonl(tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = [{"user_id": "u1", "raw": "1. Heat\n2. Fargo"}, {"key": "u2", "output": "Toy Story"},
            {"user": "u3", "texts": ["a", "b"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    backend = get_backend("scripted", path=str(path), apply_stop=True)
    out = backend.generate([req("u2"), req("u1", stop=("\n",)), req("nobody"), req("u3")])
    assert out[0].text == "Toy Story"
    assert out[1].text == "1. Heat"
    assert out[2].error == "no scripted answer for key 'nobody'" and out[2].texts == []
    assert out[3].texts == ["a", "b"]
    assert backend.calls == 4
    assert backend.identity()["revision"]


def test_scripted_inline_answers_and_default():
    backend = get_backend("scripted", answers={"1": "Heat"}, default="")
    assert [r.text for r in backend.generate([req("1"), req("2")])] == ["Heat", ""]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "JSON object"),
    ('{"user_id": "1"}', "needs one of"),
])
def test_scripted_bad_file_names_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"key": "0", "text": "ok"}\n' + content + "\n")
    with pytest.raises(RecllmError, match=message) as info:
        get_backend("scripted", path=str(path))
    assert info.value.where == f"{path}:2"


def test_scripted_needs_a_source(tmp_path):
    with pytest.raises(RecllmError, match="exactly one"):
        get_backend("scripted")
    with pytest.raises(RecllmError, match="no such answers file"):
        get_backend("scripted", path=str(tmp_path / "missing.jsonl"))
