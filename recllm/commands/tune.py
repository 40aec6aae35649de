"""`recllm tune --config eval/configs/tune-*.yaml`: LoRA fine-tuning of an instruction model on a
source dataset's training users (recllm.tune), written to RECLLM_HOME/models/<alias> and
registered as a model alias (`recllm models list`, `recllm eval --model <alias>`)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="LoRA-tune a model on a source dataset (adapter + model card)",
                       description=__doc__)
    p.add_argument("--config", required=True, help="a tune config, e.g. eval/configs/tune-ml1m-smollm2.yaml")
    p.add_argument("--alias", help="output alias (overrides the config's)")
    p.add_argument("--resume", action="store_true", help="go on from the newest complete checkpoint")
    p.add_argument("--merge", action="store_true", help="also write merged weights (RECLLM_HOME/models/<alias>/merged)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (YAML value), e.g. --set examples=500")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the model card's record as JSON")
    p.set_defaults(func=run)


def load_tune_config(path: str, overrides: dict | None = None):
    from recllm.files import read_yaml_mapping
    from recllm.tune.train import TuneConfig

    data = read_yaml_mapping(path, what="tune config", hint="pass a YAML file, e.g. "
                             "eval/configs/tune-ml1m-smollm2.yaml")
    data.pop("name", None)  # a label for people; the alias names the output
    return TuneConfig.parse({**data, **(overrides or {})}, where=str(path))


def _overrides(args: argparse.Namespace) -> dict:
    import yaml

    from recllm.errors import RecllmError

    out = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise RecllmError(f"--set {item!r} is not KEY=VALUE", where="--set")
        out[key.strip()] = yaml.safe_load(value)
    if args.alias:
        out["alias"] = args.alias
    return out


def run(args: argparse.Namespace) -> int:
    from recllm.tune.train import train

    cfg = load_tune_config(args.config, _overrides(args))
    record = train(cfg, resume=args.resume, merge=args.merge, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record, indent=2))
    return 0
