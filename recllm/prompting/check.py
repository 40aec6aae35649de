"""`recllm prompts check`: every template parses, reads only declared variables, and renders.

Each template is rendered against a small built-in fixture (titles that look like template
code included) with the full history, one item and none, since the token budget may cut a
history down to nothing. Like promptsource's template test, run in the test suite too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recllm.data.build import make_catalog
from recllm.data.schema import RecDataset, UserCase
from recllm.errors import RecllmError
from recllm.prompting.context import VARIABLES, build_context
from recllm.prompting.registry import SUFFIXES, load_template, template_files
from recllm.prompting.render import render_context
from recllm.prompting.template import PromptTemplate

FIXTURE_ITEMS = {
    "1": ("Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    "2": ("Usual Suspects, The (1995)", ["Crime", "Thriller"]),
    "3": ("Heat (1995)", ["Action", "Crime"]),
    "4": ("{{ config }} {% raw %} (2001)", ["Drama"]),  # a title that looks like template code
    "5": ("Fargo (1996)", ["Crime", "Drama"]),
    "6": ("Star Wars (1977)", ["Action", "Sci-Fi"]),
    "7": ("Amélie (2001)", ["Comedy", "Romance"]),
}


@dataclass
class CheckResult:
    name: str
    path: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fixture() -> tuple[RecDataset, UserCase, list[str]]:
    """A tiny movie dataset, one user case (history 1..4, target 5) and candidates."""
    catalog, _ = make_catalog(list(FIXTURE_ITEMS), [raw for raw, _ in FIXTURE_ITEMS.values()],
                              where="recllm.prompting.check", domain="movie",
                              genres=[genres for _, genres in FIXTURE_ITEMS.values()])
    inter = pd.DataFrame({"user_id": ["u"] * 5, "item_id": ["1", "2", "3", "4", "5"],
                          "timestamp": [881250949 + 86400 * i for i in range(5)],
                          "rating": [5.0, 4.0, float("nan"), 2.0, 5.0]})
    dataset = RecDataset("check-fixture", inter, catalog, domain="movie",
                         domain_plural="movies", source="recllm.prompting.check")
    case = UserCase("u", ("1", "2", "3", "4"), (5.0, 4.0, float("nan"), 2.0),
                    tuple(int(t) for t in inter["timestamp"][:4]), target="5",
                    target_timestamp=int(inter["timestamp"][4]))
    return dataset, case, ["6", "5", "7", "3"]


def check_template(template: PromptTemplate) -> CheckResult:
    """Problems with one template (empty when it is fine)."""
    result = CheckResult(template.name, str(template.path) if template.path else None)
    undeclared = sorted(template.variables - VARIABLES.keys())
    if undeclared:
        result.problems.append(
            f"uses undeclared variable(s) {', '.join(undeclared)}; declared: {', '.join(VARIABLES)}")
        return result
    dataset, case, candidates = fixture()
    cands = candidates if template.header.mode == "rank" else []
    domains = [(None, None), ("book", "books")]  # also as a cross-domain target
    for domain, plural in domains:
        context = build_context(case, dataset, k=template.header.k, candidates=cands,
                                domain=domain, domain_plural=plural)
        for keep in (len(case.history), 1, 0):
            try:
                render_context(template, context, keep)
            except RecllmError as exc:
                result.problems.append(f"with {keep} history item(s): {exc}")
    return result


def check_paths(paths: Iterable[str | Path] = ()) -> list[CheckResult]:
    """Check the given files/folders, or every template that can be loaded by name."""
    paths = list(paths)
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
    if not paths:
        files = [path for _, path in sorted(template_files().items())]
    results = []
    for file in files:
        try:
            results.append(check_template(load_template(file)))
        except RecllmError as exc:
            results.append(CheckResult(file.stem, str(file), [str(exc)]))
    return results
