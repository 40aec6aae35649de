"""The vllm backend. On CPU a fake `vllm` module stands in, so the request -> LLM.chat /
LLM.generate / SamplingParams / StructuredOutputsParams translation really runs; the real-engine
test needs vLLM and a CUDA GPU and is skipped elsewhere."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from recllm.backends import GenerationRequest, SamplingParams, get_backend


def fake_vllm(monkeypatch, *, new_api: bool = True, fail_on: str | None = None):
    calls: dict = {"llm": None, "chat": [], "generate": []}

    class FakeSamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class Structured:
        def __init__(self, **kwargs):
            assert len(kwargs) == 1
            self.kwargs = kwargs

    def outputs_for(texts, params):
        outs = []
        for text, p in zip(texts, params):
            if fail_on and fail_on in text:
                raise ValueError(f"engine rejected {text!r}")
            n = p.kwargs["n"]
            comps = [SimpleNamespace(text=f"{text} -> {j} END more", token_ids=[1, 2, 3], finish_reason="stop")
                     for j in range(n)]
            outs.append(SimpleNamespace(outputs=comps, prompt_token_ids=[0] * len(text)))
        return outs

    class FakeLLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def chat(self, messages, sampling_params=None, use_tqdm=True):
            calls["chat"].append((messages, sampling_params))
            return outputs_for([m[-1]["content"] for m in messages], sampling_params)

        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            calls["generate"].append((prompts, sampling_params))
            return outputs_for(prompts, sampling_params)

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    sp = types.ModuleType("vllm.sampling_params")
    if new_api:
        sp.StructuredOutputsParams = Structured
    else:
        sp.GuidedDecodingParams = Structured
    vllm.sampling_params = sp
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    return calls


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_text("{}")
    return folder


def test_engine_arguments_and_request_translation(monkeypatch, model_folder):
    calls = fake_vllm(monkeypatch)
    backend = get_backend("vllm", model=str(model_folder), tensor_parallel_size=2, max_model_len=4096, seed=5)
    requests = [
        GenerationRequest(messages=({"role": "user", "content": "chat-a"},),
                          params=SamplingParams(max_tokens=9, stop=(" END",), temperature=0.5, seed=3, n=2)),
        GenerationRequest(prompt="raw-b", params=SamplingParams(max_tokens=4), structured={"choice": ["x", "y"]}),
        GenerationRequest(messages=({"role": "user", "content": "chat-c"},), structured={"json": {"type": "object"}}),
    ]
    out = backend.generate(requests)
    llm = calls["llm"]
    assert llm["tensor_parallel_size"] == 2 and llm["enable_prefix_caching"] is True
    assert llm["max_model_len"] == 4096 and llm["seed"] == 5 and llm["model"] == str(model_folder.resolve())
    (messages, params), = calls["chat"]
    assert [m[-1]["content"] for m in messages] == ["chat-a", "chat-c"]
    assert params[0].kwargs == {"n": 2, "max_tokens": 9, "temperature": 0.5, "top_p": 1.0, "seed": 3,
                                "stop": [" END"]}
    assert params[1].kwargs["structured_outputs"].kwargs == {"json": {"type": "object"}}
    (prompts, gparams), = calls["generate"]
    assert prompts == ["raw-b"] and gparams[0].kwargs["structured_outputs"].kwargs == {"choice": ["x", "y"]}
    # Results come back in the caller's order, stop strings cut.
    assert out[0].texts == ["chat-a -> 0", "chat-a -> 1"] and out[1].text == "raw-b -> 0 END more"
    assert out[2].text == "chat-c -> 0 END more" and out[0].completion_tokens == 6 and out[1].prompt_tokens == 5


def test_penalties_are_passed_only_when_set(monkeypatch, model_folder):
    calls = fake_vllm(monkeypatch)
    get_backend("vllm", model=str(model_folder)).generate([
        GenerationRequest(prompt="plain"),
        GenerationRequest(prompt="penalized", params=SamplingParams(repetition_penalty=1.2, presence_penalty=0.5)),
        GenerationRequest(prompt="frequency", params=SamplingParams(frequency_penalty=0.3))])
    (_, params), = calls["generate"]
    assert not {"repetition_penalty", "frequency_penalty", "presence_penalty"} & set(params[0].kwargs)
    assert (params[1].kwargs["repetition_penalty"], params[1].kwargs["frequency_penalty"],
            params[1].kwargs["presence_penalty"]) == (1.2, 0.0, 0.5)
    assert params[2].kwargs["frequency_penalty"] == 0.3 and params[2].kwargs["repetition_penalty"] == 1.0


def test_older_vllm_gets_guided_decoding(monkeypatch, model_folder):
    calls = fake_vllm(monkeypatch, new_api=False)
    get_backend("vllm", model=str(model_folder)).generate(
        [GenerationRequest(prompt="p", structured={"regex": "[a-z]+"})])
    (_, params), = calls["generate"]
    assert params[0].kwargs["guided_decoding"].kwargs == {"regex": "[a-z]+"}


def test_one_bad_request_fails_alone(monkeypatch, model_folder):
    fake_vllm(monkeypatch, fail_on="poison")
    out = get_backend("vllm", model=str(model_folder)).generate(
        [GenerationRequest(prompt="good"), GenerationRequest(prompt="poison"), GenerationRequest(prompt="fine"),
         GenerationRequest(prompt="bad", structured={"choice": ["a"], "regex": "b"})])
    assert out[0].text == "good -> 0 END more" and out[2].text == "fine -> 0 END more"
    assert "engine rejected" in out[1].error and "exactly one of" in out[3].error


def test_missing_vllm_is_a_clear_error(monkeypatch, model_folder):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    backend = get_backend("vllm", model=str(model_folder))
    with pytest.raises(Exception, match="pip install 'recllm\\[vllm\\]'"):
        backend.generate([GenerationRequest(prompt="x")])


@pytest.mark.gpu
def test_real_vllm_on_gpu(tmp_path):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from tiny_llm import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny")
    backend = get_backend("vllm", model=str(folder), gpu_memory_utilization=0.2, max_model_len=256)
    out = backend.generate([GenerationRequest(messages=({"role": "user", "content": "heat"},),
                                              params=SamplingParams(max_tokens=4)),
                            GenerationRequest(prompt="heat", params=SamplingParams(max_tokens=4),
                                              structured={"choice": ["fargo", "heat"]})])
    assert out[0].error is None and out[1].text in {"fargo", "heat"}
