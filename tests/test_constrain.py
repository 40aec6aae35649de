"""Catalog-constrained generation (recllm.backends.constrain): the trie, the transformers logits
processor on a tiny random Llama with a byte-level BPE tokenizer (trained here, offline, in
milliseconds: real BPE behaviour such as " Title" tokens), the GBNF grammar, the vLLM mapping,
and each bad input of issue 10 item 4."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from recllm.backends import constrain
from recllm.errors import RecllmError
from recllm.grounding.parse import parse_titles

TITLES = ["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)", "Heat (1986)", "Fargo (1996)",
          'The "Great" Escape (1963)', "Back\\slash (2001)", "Cité des enfants perdus, La (1995)",
          "Star Wars (1977)", "Star Trek (2009)", "Godfather, The (1972)", "M (1931)"]


def test_trie_arrays_hold_every_sequence_once():
    seqs = [[5, 6, 9], [5, 6, 7, 9], [5, 8, 9], [4, 9], [5, 6, 7, 7, 9]]
    trie = constrain.TitleTrie.build(seqs, [f"t{i}" for i in range(5)], {})
    assert sorted(map(tuple, trie.sequences())) == sorted(map(tuple, seqs))
    assert trie.n_nodes == 1 + 2 + 1 + 1 + 1 + 2 + 1 + 2 + 1  # shared prefixes stored once
    five = trie.step(0, 5)
    assert trie.through[five] == 4 and trie.rest[five] == 2  # 4 titles below; shortest: 5 6 9 / 5 8 9
    assert trie.step(0, 3) == -1 and list(trie.children(0)[1]) == [4, 5]  # children sorted by token
    leaf = trie.step(trie.step(five, 8), 9)
    assert trie.titles[trie.leaf_title[leaf]] == "t2"


def test_trie_matches_a_naive_one_on_random_sequences():
    import random

    rng = random.Random(0)
    seqs = {tuple(rng.choice([1, 2, 3]) for _ in range(rng.randint(1, 6))) + (9,) for _ in range(300)}
    seqs = [list(x) for x in seqs]
    trie = constrain.TitleTrie.build(seqs, [str(x) for x in seqs], {})
    assert sorted(map(tuple, trie.sequences())) == sorted(map(tuple, seqs))
    for x in seqs:  # every prefix: titles through it and the fewest tokens to an end
        node = 0
        for d, t in enumerate(x):
            node = trie.step(node, t)
            below = [y for y in seqs if y[:d + 1] == x[:d + 1]]
            assert trie.through[node] == len(below)
            assert trie.rest[node] == min(len(y) for y in below) - d - 1
        assert trie.titles[trie.leaf_title[node]] == str(x) and trie.leaf(str(x)) == node


# -- a tiny Llama with a byte-level BPE tokenizer ---------------------------------------------------
@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_llm import build_bpe_model

    corpus = [f"{i}. {t}\n" for i, t in enumerate(TITLES * 3, 1)] + ["recommend movies user assistant"]
    return build_bpe_model(tmp_path_factory.mktemp("bpe") / "model", corpus, max_positions=512)


def chat(text, titles, fmt="numbered", k=5, **params):
    from recllm.backends import GenerationRequest, SamplingParams

    return GenerationRequest(messages=({"role": "user", "content": text},),
                             params=SamplingParams(**({"max_tokens": 80} | params)),
                             structured={"titles": titles, "format": fmt, "max_items": k})


def lines_of(text: str, fmt: str) -> list[str]:
    assert text == "" or text.endswith("\n"), repr(text)  # every line finished
    lines = text.splitlines()
    if fmt == "numbered":
        assert [ln.split(". ", 1)[0] for ln in lines] == [str(i) for i in range(1, len(lines) + 1)]
        return [ln.split(". ", 1)[1] for ln in lines]
    return lines


@pytest.mark.parametrize("fmt", ["numbered", "lines"])
@pytest.mark.parametrize("params", [{}, {"temperature": 1.5, "seed": 3, "n": 2}, {"repetition_penalty": 1.3}])
def test_every_generated_line_is_a_title(bpe_model, fmt, params):
    from recllm.backends import get_backend

    backend = get_backend("transformers", model=str(bpe_model), batch_size=4)
    prompts = ["recommend movies", "user toy story heat heat heat", "a", "Star Wars fan here, recommend"]
    results = backend.generate([chat(p, TITLES, fmt, **params) for p in prompts])
    for r in results:
        assert r.error is None
        for text in r.texts:
            lines = lines_of(text, fmt)
            assert 1 <= len(lines) <= 5 and set(lines) <= set(TITLES)
            assert len(set(lines)) == len(lines)  # no title twice in one answer
            if fmt == "numbered":
                parsed = parse_titles(text)
                assert parsed.failure is None and list(parsed.titles) == lines


def test_each_row_follows_its_own_candidates_and_batching_changes_nothing(bpe_model):
    from recllm.backends import get_backend

    lists = [TITLES[:3], TITLES[3:6], TITLES[6:], ["Fargo (1996)"]]
    requests = [chat(f"recommend {i}", lst, k=3) for i, lst in enumerate(lists)]
    batched = get_backend("transformers", model=str(bpe_model), batch_size=4).generate(requests)
    single = get_backend("transformers", model=str(bpe_model), batch_size=1).generate(requests)
    assert [r.text for r in batched] == [r.text for r in single]
    for r, lst in zip(batched, lists):
        assert set(lines_of(r.text, "numbered")) <= set(lst)
    assert lines_of(batched[3].text, "numbered") == ["Fargo (1996)"]  # one candidate: written once, then the end


def test_a_short_budget_never_cuts_a_title(bpe_model):
    from recllm.backends import get_backend

    backend = get_backend("transformers", model=str(bpe_model))
    for budget in (3, 9, 14, 20):
        r = backend.generate([chat("recommend", TITLES, k=10, max_tokens=budget)])[0]
        assert set(lines_of(r.text, "numbered")) <= set(TITLES) and r.completion_tokens <= budget


def drive(tok, spec_dict, seed=0, max_new=200, dtype=None):
    """Random logits, end-of-text pushed down: what the processor alone lets through."""
    import torch

    spec = constrain.parse_spec(spec_dict)
    trie = constrain.trie_for(tok, spec.titles, spec.format)
    proc = constrain.TitleConstraint(tok, [trie], [spec], [tok.eos_token_id], prompt_width=1, max_new=max_new)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([[tok.bos_token_id]])
    for _ in range(max_new):
        scores = torch.randn(1, len(tok), generator=gen).to(dtype or torch.float32)  # float64: the torch (GPU) path
        scores[0, tok.eos_token_id] -= 5  # would rather go on than stop
        nxt = int(proc(ids, scores).argmax())
        if nxt == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return lines_of(tok.decode(ids[0, 1:]), spec.format)


def test_excluded_titles_are_never_written(bpe_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_model)
    for seed in range(3):
        lines = drive(tok, {"titles": TITLES, "max_items": 10, "exclude": TITLES[:8] + ["Not in the list"]}, seed)
        assert sorted(lines) == sorted(TITLES[8:])  # the other 4, each once, then the end
    assert drive(tok, {"titles": TITLES[:2], "exclude": TITLES[:2]}) == []  # nothing left: end at once


def test_processor_writes_k_distinct_titles_when_the_model_never_wants_to_stop(bpe_model):
    """Even where titles share prefixes (Toy Story / Toy Story 2, Heat (1995) / Heat (1986))."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_model)
    assert sorted(drive(tok, {"titles": TITLES[:4], "max_items": 4})) == sorted(TITLES[:4])
    for seed in range(2):  # the numpy (CPU float32) and the torch mask agree
        spec = {"titles": TITLES, "max_items": 5, "exclude": TITLES[:2]}
        assert drive(tok, spec, seed) == drive(tok, spec, seed, dtype=__import__("torch").float64)
    assert len(set(drive(tok, {"titles": TITLES, "max_items": 6, "format": "lines"}, seed=1))) == 6


# -- bad input ---------------------------------------------------------------------------------------
def test_empty_candidate_list_fails_only_its_own_request(bpe_model):
    from recllm.backends import get_backend

    backend = get_backend("transformers", model=str(bpe_model))
    ok, empty = backend.generate([chat("recommend", TITLES), chat("recommend", [])])
    assert ok.error is None and set(lines_of(ok.text, "numbered")) <= set(TITLES)
    assert "title list is empty" in empty.error and "\n" not in empty.error


def test_titles_that_tokenize_to_nothing_are_skipped_and_counted(bpe_model, capsys):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_model)
    trie = constrain.trie_for(tok, ["", "   ", "Heat (1995)", "Heat (1995)", "two\nlines", None], "numbered")
    assert trie.titles == ["Heat (1995)"]
    assert trie.skipped == {"not one line of text": 4, "duplicate": 1}
    assert "5 of 6 titles skipped (4 not one line of text, 1 duplicate)" in capsys.readouterr().err


def test_titles_a_tokenizer_cannot_spell_are_skipped_and_all_skipped_is_one_error():
    pytest.importorskip("transformers")
    from tiny_llm import build_tokenizer  # word-level: unknown words become <unk>, no newline token

    tok = build_tokenizer()
    with pytest.raises(RecllmError) as err:
        constrain.trie_for(tok, ["toy story", "Zyzzyva (2020)"], "lines")
    assert "none of the 2 titles can be written" in err.value.message and "tokens do not spell it" in err.value.message


class HugeCatalog(Sequence):
    """Two million titles without building them (only the length is looked at)."""

    def __len__(self):
        return 2_000_000

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        return f"Title {i}"


def test_two_million_titles_is_one_clear_error_with_the_limit_and_why():
    with pytest.raises(RecllmError) as err:
        constrain.parse_spec({"titles": HugeCatalog()})
    msg = err.value.message
    assert "2,000,000 titles is over the limit of 1,000,000" in msg and "MB to build" in msg
    assert "candidates" in err.value.hint
    with pytest.raises(RecllmError):
        constrain.gbnf_for_titles(HugeCatalog(), 10)


@pytest.mark.parametrize("spec, field", [
    ({"titles": "Heat"}, "titles"), ({"titles": ["a"], "format": "json"}, "format"),
    ({"titles": ["a"], "max_items": 0}, "max_items"), ({"titles": ["a"], "k": 3}, "unknown field"),
    ({"titles": ["a"], "exclude": "a"}, "exclude")])
def test_bad_specs_are_one_line_errors(spec, field):
    with pytest.raises(RecllmError) as err:
        constrain.parse_spec(spec)
    assert field in str(err.value) and "\n" not in err.value.message


def test_trie_is_cached_in_memory_and_on_disk(bpe_model, monkeypatch):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_model)
    many = tuple(f"{t} {i}" for i in range(120) for t in TITLES)  # > 1,000: kept on disk too
    first = constrain.trie_for(tok, many)
    assert constrain.trie_for(tok, many) is first
    constrain._TRIES.clear()
    monkeypatch.setattr(constrain, "title_sequences", lambda *a: pytest.fail("rebuilt instead of loaded"))
    again = constrain.trie_for(tok, many)
    assert again is not first and again.titles == first.titles
    assert (again.child_tokens == first.child_tokens).all()


# -- GBNF (llama.cpp) and vLLM -------------------------------------------------------------------------
def gbnf_to_regex(expr: str) -> str:
    """Our grammar's title expression as a Python regex (literals, groups, |, ?): a checker."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c == '"':
            j, lit = i + 1, []
            while expr[j] != '"':
                if expr[j] == "\\":
                    e = expr[j + 1]
                    if e in "xuU":
                        n = {"x": 2, "u": 4, "U": 8}[e]
                        lit.append(chr(int(expr[j + 2:j + 2 + n], 16)))
                        j += 2 + n
                        continue
                    lit.append({"n": "\n", "r": "\r", "t": "\t"}.get(e, e))
                    j += 2
                    continue
                lit.append(expr[j])
                j += 1
            out.append(re.escape("".join(lit)))
            i = j + 1
        elif c in "()|?":
            out.append("(?:" if c == "(" else c)
            i += 1
        else:
            assert c == " ", expr[i:i + 20]
            i += 1
    return "".join(out)


def test_gbnf_lists_exactly_the_titles_with_escapes():
    titles = TITLES + ["Tab\there", "Emoji 🎬 (2020)", "Ctrl\x07 char", "Heat"]
    grammar = constrain.gbnf_for_titles(titles, 3)
    root, title = grammar.splitlines()
    assert root == 'root ::= "1. " title "\\n" ("2. " title "\\n" ("3. " title "\\n")?)?'
    assert title.isascii() and '\\"Great\\"' in title and "Back\\\\slash" in title
    assert "\\u00E9" in title and "\\U0001F3AC" in title and "\\t" in title and "\\x07" in title
    pattern = re.compile(gbnf_to_regex(title.removeprefix("title ::= ")))
    assert all(pattern.fullmatch(t) for t in titles)
    for wrong in ("Heat (199", "Toy Story", "Heat (1995)x", "Star", ""):
        assert not pattern.fullmatch(wrong), wrong
    lines = constrain.gbnf_for_titles(titles, 2, numbered=False).splitlines()[0]
    assert lines == 'root ::= title "\\n" (title "\\n")?'
    fewer = constrain.gbnf_for_titles(titles, 2, exclude=["Heat (1995)"]).splitlines()[1].removeprefix("title ::= ")
    assert not re.fullmatch(gbnf_to_regex(fewer), "Heat (1995)") and re.fullmatch(gbnf_to_regex(fewer), "Heat (1986)")


def test_vllm_gets_a_grammar_for_a_title_constraint(monkeypatch):
    import sys
    import types

    from recllm.backends import vllm_llm

    seen = {}

    class Structured:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    mod = types.ModuleType("vllm.sampling_params")
    mod.StructuredOutputsParams = Structured
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", mod)
    out = vllm_llm._structured({"titles": ["Heat (1995)", "Fargo (1996)"], "max_items": 2})
    assert isinstance(out["structured_outputs"], Structured)
    assert set(seen) == {"grammar"} and '"Fargo (1996)"' in seen["grammar"]
    with pytest.raises(RecllmError, match="title list is empty"):
        vllm_llm._structured({"titles": []})
