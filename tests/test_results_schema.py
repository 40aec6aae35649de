"""Every run's samples.jsonl lines and results.json validate against the documented JSON Schemas
in docs/, and those files are what recllm.evaluate.schema generates (they never drift)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from recllm.evaluate import EvalConfig, run_eval
from recllm.evaluate.rundir import read_records
from recllm.evaluate.schema import SCHEMA_VERSION, json_schemas

DOCS = Path(__file__).resolve().parents[1] / "docs"
ANSWERS = {"u1": "1. Star Wars (1977)\n2. Heat (1995)", "u2": "Fargo", "u4": "1. Fargo (1996)"}


def test_docs_hold_the_generated_schemas():
    for name, schema in json_schemas().items():
        assert json.loads((DOCS / name).read_text()) == schema, \
            f"docs/{name} is stale: run recllm.evaluate.schema.write('docs')"


@pytest.mark.parametrize("protocol", ["full", "candidates"])
def test_every_run_file_validates(tmp_path, tiny_dataset, protocol):
    cfg = EvalConfig(dataset="tiny", model="scripted-test", backend="scripted",
                     backend_options={"answers": ANSWERS}, users=None, max_history=None,
                     output=str(tmp_path / protocol), progress=False, ks=[1, 5],
                     ci_resamples=20, protocol=protocol, negatives=3, reasks=1)
    [run] = run_eval(cfg, dataset=tiny_dataset, log=lambda m: None)
    sample_schema = json.loads((DOCS / "sample.schema.json").read_text())
    results_schema = json.loads((DOCS / "results.schema.json").read_text())
    samples = read_records(run / "samples.jsonl")
    assert samples and all(s["schema_version"] == SCHEMA_VERSION for s in samples)
    for s in samples:   # u3 has no answer: its error line must validate too
        jsonschema.validate(s, sample_schema)
    results = json.loads((run / "results.json").read_text())
    jsonschema.validate(results, results_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**samples[0], "systems": {"x": {"kind": "oracle"}}}, sample_schema)
