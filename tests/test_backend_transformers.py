"""The transformers backend on a tiny random Llama built offline: batching must not change
answers, order is kept, no double BOS, stop strings, caps, and per-request failures."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_llm import build_tiny_model

from recllm.backends import GenerationRequest, SamplingParams, get_backend
from recllm.errors import RecllmError


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def chat(text: str, key: str | None = None, **params) -> GenerationRequest:
    return GenerationRequest(messages=({"role": "user", "content": text},), key=key,
                             params=SamplingParams(**({"max_tokens": 6} | params)))


PROMPTS = ["recommend movies like heat", "heat fargo star wars the a of and 1 2 3 4 5",
           "toy story", "user watched heat and fargo and star wars . recommend 5 titles", "a"]


def test_batched_equals_one_at_a_time_and_keeps_order(tiny_folder):
    batched = get_backend("transformers", model=str(tiny_folder), batch_size=8)
    single = get_backend("transformers", model=str(tiny_folder), batch_size=1)
    requests = [chat(p, key=str(i)) for i, p in enumerate(PROMPTS)]
    a, b = batched.generate(requests), single.generate(requests)
    assert [r.text for r in a] == [r.text for r in b]  # left padding + attention mask: no leakage
    assert [r.prompt_tokens for r in a] == [batched.count_tokens(r) for r in requests]
    assert all(r.error is None and r.completion_tokens <= 6 for r in a)
    # Order is the caller's, not the length-sorted one: lengths differ, so a swap would show.
    assert len({r.prompt_tokens for r in a}) == len(PROMPTS)


def test_chat_template_is_applied_without_double_bos(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder))
    ids = backend.encode(chat("toy story"))
    tok = backend._tokenizer
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert backend.render(chat("toy story")).endswith("<|im_start|>assistant\n")
    # A raw prompt (base-model templates) gets exactly the tokenizer's own BOS.
    raw = backend.encode(GenerationRequest(prompt="toy story"))
    assert raw[0] == tok.bos_token_id and raw.count(tok.bos_token_id) == 1


def test_endless_answer_is_capped_by_max_tokens(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder), max_new_tokens=4)
    result = backend.generate([chat("recommend", max_tokens=50)])[0]
    assert result.completion_tokens <= 4
    if result.completion_tokens == 4:
        assert result.finish_reason == "length"


def test_stop_string_truncates(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder))
    free = backend.generate([chat("heat", max_tokens=8)])[0].text
    assert free, "the random model should say something"
    stop = free.split()[1] if len(free.split()) > 1 else free.split()[0]
    cut = backend.generate([chat("heat", max_tokens=8, stop=(stop,))])[0]
    assert stop not in cut.text and free.startswith(cut.text)
    assert cut.finish_reason == "stop"


def test_seeded_sampling_is_reproducible_and_n_answers(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder))
    req = chat("heat", max_tokens=8, temperature=1.0, seed=7, n=3)
    first, second = backend.generate([req])[0], backend.generate([req])[0]
    assert len(first.texts) == 3 and first.texts == second.texts


def test_too_long_prompt_is_a_recorded_failure_and_others_go_on(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder))
    long = chat(" ".join(["heat"] * 400))  # the tiny model's context is 256
    out = backend.generate([chat("heat"), long, chat("fargo")])
    assert out[1].error and "context" in out[1].error and out[1].texts == []
    assert out[0].error is None and out[2].error is None


def test_missing_chat_template_and_missing_pad_token(tmp_path):
    folder = build_tiny_model(tmp_path / "base", chat_template=None, with_pad=False)
    backend = get_backend("transformers", model=str(folder))
    out = backend.generate([chat("heat"), GenerationRequest(prompt="heat fargo", params=SamplingParams(max_tokens=3))])
    assert "no chat template" in out[0].error
    assert out[1].error is None and backend._tokenizer.pad_token is not None


def test_model_folder_missing_files_is_a_clear_error(tmp_path, tiny_folder):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_folder / "config.json").read_text())
    with pytest.raises(RecllmError, match="missing.*weights.*tokenizer"):
        get_backend("transformers", model=str(broken))


def test_unknown_option_suggests_the_right_one(tiny_folder):
    with pytest.raises(RecllmError, match="did you mean 'batch_size'"):
        get_backend("transformers", model=str(tiny_folder), batchsize=4)


def test_structured_request_warns_once_that_it_is_not_enforced(tiny_folder, capsys):
    backend = get_backend("transformers", model=str(tiny_folder))
    req = GenerationRequest(prompt="heat", params=SamplingParams(max_tokens=2), structured={"choice": ["a"]})
    backend.generate([req])
    backend.generate([req])
    assert capsys.readouterr().err.count("does not enforce `structured`") == 1


def test_chat_template_that_raises_is_that_requests_error(tmp_path):
    strict = ("{% for m in messages %}{% if m['role'] == 'system' %}"
              "{{ raise_exception('system role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}")
    folder = build_tiny_model(tmp_path / "strict", chat_template=strict)
    backend = get_backend("transformers", model=str(folder))
    system = GenerationRequest(messages=({"role": "system", "content": "x"}, {"role": "user", "content": "heat"}))
    out = backend.generate([system, chat("heat")])
    assert "system role not supported" in out[0].error and out[1].error is None


# -- repetition control ---------------------------------------------------------------------------

def _prompt_words(backend, request) -> set[str]:
    text = backend.render(request)
    for special in ("<s>", "<|im_start|>", "<|im_end|>"):
        text = text.replace(special, " ")
    return set(text.split())


def test_repetition_penalty_steers_away_from_prompt_tokens(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder), batch_size=8)
    plain = [chat(p, max_tokens=12) for p in PROMPTS]
    penalized = [chat(p, max_tokens=12, repetition_penalty=5.0) for p in PROMPTS]
    a, b = backend.generate(plain), backend.generate(penalized)

    def echoed(results, requests) -> int:  # answer words that the prompt already contains
        return sum(w in _prompt_words(backend, q) for r, q in zip(results, requests) for w in r.text.split())

    assert [r.text for r in a] != [r.text for r in b]
    assert echoed(b, penalized) < echoed(a, plain)  # the random model echoes "assistant" unpenalized


def test_frequency_and_presence_penalties_stop_loops(tiny_folder):
    backend = get_backend("transformers", model=str(tiny_folder), batch_size=8)
    loops = backend.generate([chat(p, max_tokens=12) for p in PROMPTS])
    assert any(len(set(r.text.split())) < len(r.text.split()) for r in loops)  # the unpenalized model loops
    for name in ("frequency_penalty", "presence_penalty"):
        out = backend.generate([chat(p, max_tokens=12, **{name: 2.0}) for p in PROMPTS])
        for r in out:
            words = r.text.split()
            assert words and len(set(words)) == len(words), (name, r.text)


def test_penalized_batches_equal_one_at_a_time(tiny_folder):
    # Left padding must not count as "already seen" (the pad id can be a real token, e.g. EOS).
    batched = get_backend("transformers", model=str(tiny_folder), batch_size=8)
    single = get_backend("transformers", model=str(tiny_folder), batch_size=1)
    requests = [chat(p, max_tokens=10, repetition_penalty=1.8, frequency_penalty=0.5) for p in PROMPTS]
    assert [r.text for r in batched.generate(requests)] == [r.text for r in single.generate(requests)]


def test_penalty_formula_skips_padding_and_counts_answer_tokens_only():
    torch = pytest.importorskip("torch")
    from recllm.backends.penalties import apply_penalties

    # Two rows, prompt width 3; row 1 is left-padded by one (pad id 0). Then 2 generated tokens.
    ids = torch.tensor([[1, 2, 3, 4, 4], [0, 2, 2, 3, 5]])
    scores = torch.tensor([[1.0, 2.0, -2.0, 4.0, 1.0, 1.0], [1.0, 2.0, -2.0, 4.0, 1.0, 1.0]])
    rep = apply_penalties(ids, scores, SamplingParams(repetition_penalty=2.0), starts=[0, 1], width=3)
    assert rep[0].tolist() == [1.0, 1.0, -4.0, 2.0, 0.5, 1.0]
    assert rep[1].tolist() == [1.0, 2.0, -4.0, 2.0, 1.0, 0.5]  # id 0 was padding: untouched
    freq = apply_penalties(ids, scores, SamplingParams(frequency_penalty=0.5, presence_penalty=0.25),
                           starts=[0, 1], width=3)
    assert freq[0].tolist() == [1.0, 2.0, -2.0, 4.0, 1.0 - 1.0 - 0.25, 1.0]  # id 4 twice in the answer
    assert freq[1].tolist() == [1.0, 2.0, -2.0, 4.0 - 0.75, 1.0, 1.0 - 0.75]  # prompt ids 2 are not counted


def test_penalty_values_are_checked():
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        SamplingParams(repetition_penalty=0.0)
    with pytest.raises(ValueError, match="frequency_penalty must be within"):
        SamplingParams(frequency_penalty=3.0)
