"""A separate package adds a baseline, a data format, a metric, a backend and a template, each
in one file plus its entry point (tests/plugin/: the package and its dist-info, found by
importlib.metadata once the folder is on PYTHONPATH), and `recllm eval` runs them all; a
plugin never replaces a built-in of the same name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

PLUGIN = Path(__file__).parent / "plugin"
MOVIES = {"1": "Toy Story (1995)", "2": "Heat (1995)", "3": "Fargo (1996)", "4": "Jumanji (1995)",
          "5": "Casino (1995)", "6": "Babe (1995)"}
HISTORIES = {"u1": ["1", "2", "3", "4"], "u2": ["2", "3", "5", "6"], "u3": ["1", "4", "5", "3"]}

# In the plugin's interpreter: what the registries hold, then `recllm eval` and `recllm report`.
SCRIPT = """
import json, sys
from recllm.baselines import BASELINES
from recllm.backends import BACKENDS
from recllm.data.formats import FORMATS, get_format
from recllm.evaluate.metrics import METRICS
from recllm.prompting import load_template
from recllm.cli import main
print(json.dumps({
    "popularity": BASELINES.get("popularity").__module__, "table": get_format("table").name,
    "table_module": get_format("table").read.__module__, "ndcg": METRICS.get("ndcg").fn.__module__,
    "scripted": BACKENDS.get("scripted").__module__,
    "generate": "PLUGIN" in load_template("generate").source,
    "plugins": {r.kind: sorted(r.plugins) for r in (BASELINES, BACKENDS, FORMATS, METRICS)},
}))
sys.stdout.flush()
code = main(["eval", "--config", sys.argv[1], "--json"])
sys.stdout.flush()
print("REPORT")
sys.exit(code or main(["report", sys.argv[2], "--k", "3"]))
"""


def test_a_plugin_package_extends_every_registry_through_recllm_eval(tmp_path):
    data = tmp_path / "movies.demo"
    data.write_text("".join(f"{u}|{i}|{10 * n}|{MOVIES[i]}\n" for u, items in HISTORIES.items()
                            for n, i in enumerate(items, 1)))
    run = tmp_path / "run"
    config = {"dataset": str(data), "model": "listing-model", "backend": "listing",
              "backend_options": {"titles": ["Fargo (1996)", "Casino (1995)", "Babe (1995)"]},
              "template": "demo-generate", "protocol": "full", "k": 3, "ks": [1, 3], "users": None,
              "max_history": None, "baselines": ["alphabet", "popularity"],
              "baseline_options": {"alphabet": {"reverse": True}}, "output": str(run), "progress": False,
              "ci_resamples": 50}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1", "RECLLM_PROMPTS": ""}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cfg.yaml"), str(run)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    first, _, rest = done.stdout.partition("\n")
    seen = json.loads(first)
    # built-in names stay built-in: the plugin's popularity / table / ndcg / generate are ignored
    assert seen["popularity"] == "recllm.baselines.simple" and seen["table_module"] == "recllm.data.table"
    assert seen["ndcg"] == "recllm.evaluate.metrics" and seen["generate"] is False
    assert seen["scripted"] == "recllm.backends.scripted"
    assert seen["plugins"] == {"baseline": ["alphabet"], "backend": ["listing"], "data format": ["demo"],
                               "metric": ["demo_precision"]}

    results = json.loads((run / "results.json").read_text())
    assert results["dataset"]["source"] == str(data) and results["model"]["backend"]["engine"] == "listing"
    systems = results["systems"]
    assert list(systems) == ["listing-model", "alphabet", "popularity"]
    # the plugin metric is computed for every system; the precision of 3 answers holding 1 hit is 1/3
    assert all({"demo_precision@1", "demo_precision@3"} <= set(s["metrics"]) for s in systems.values())
    llm = systems["listing-model"]["metrics"]
    assert llm["demo_precision@3"]["mean"] == llm["hit@3"]["mean"] / 3
    samples = {s["user"]: s["systems"] for s in map(json.loads, (run / "samples.jsonl").read_text().splitlines())}
    # the backend answered with its titles (history items dropped); the baseline took its options
    assert samples["u1"]["listing-model"]["raw"] == ["1. Fargo (1996)\n2. Casino (1995)\n3. Babe (1995)"]
    assert samples["u1"]["alphabet"]["ranked"] == ["6", "5", "4"]  # reverse: true, u1 saw 1, 2, 3
    table = rest.partition("REPORT\n")[2].splitlines()
    header = [c.strip() for c in table[0].split("|")]
    row = [c.strip() for c in next(line for line in table if "listing-model" in line).split("|")]
    assert row[header.index("demo_prec@3")] == f"{llm['demo_precision@3']['mean']:.3f}"


def test_a_broken_template_folder_entry_is_one_error():
    import pytest

    from recllm.errors import RecllmError
    from recllm.prompting.registry import _plugin_dir

    with pytest.raises(RecllmError, match="template folder 'bad' .* cannot be loaded"):
        _plugin_dir("bad", "no_such_module_here:TEMPLATES")
    with pytest.raises(RecllmError, match="is not a folder"):
        _plugin_dir("file", "recllm.errors:__doc__")
