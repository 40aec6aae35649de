"""Acceptance: `recllm eval` against a hostile OpenAI-compatible server on loopback. The first
reply for some users is valid JSON of the wrong shape (or an undecodable body); the run must
finish, fail exactly those users, finish them with `--resume --retry-failed`, and never ask
for a valid answer twice. Credentials in base_url stay out of every file a run writes."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import make_dataset

from recllm.cli import main
from recllm.evaluate.rundir import read_records

# user -> its own history item (in no other history, so the server can tell users apart by
# the title in the prompt); every user also saw items 4 and 11, and 11 is the held-out target.
OWN = {"u1": "1", "u2": "2", "u3": "3", "u4": "5", "u5": "6", "u6": "7", "u7": "8", "u8": "10"}
HISTORIES = {u: [(item, 1, 4), ("4", 2, 4), ("11", 3, 5)] for u, item in OWN.items()}
# The first reply for these users, then valid ones.
MALFORMED = {
    "u1": (b'{"choices": [null]}', {}),
    "u2": (b'{"choices": ["x"]}', {}),
    "u3": (b'{"choices": [{"message": "hello"}]}', {}),
    "u4": (b'{"choices": [{"message": {"content": "1. Fargo"}}], "usage": "many"}', {}),
    "u5": (b'{"choices": [{"message": {"content": "1. Fargo"}}]}', {"content-encoding": "gzip"}),
}
VALID = {"choices": [{"message": {"role": "assistant", "content": "1. Braveheart\n2. Fargo"},
                      "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}


class HostileServer:
    def __init__(self, titles: dict[str, str]):
        self.titles = titles  # user -> the title only its prompt holds
        self.requests: Counter[str] = Counter()  # user -> requests seen
        self.paths: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                prompt = json.dumps(body["messages"], ensure_ascii=False)
                [user] = [u for u, t in outer.titles.items() if t in prompt]
                with outer.lock:
                    outer.requests[user] += 1
                    outer.paths.append(self.path)
                    first = outer.requests[user] == 1
                payload, headers = MALFORMED[user] if first and user in MALFORMED else (
                    json.dumps(VALID).encode(), {})
                self.send_response(200)
                for k, v in {"content-type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dataset(monkeypatch):
    data = make_dataset(HISTORIES)
    monkeypatch.setattr("recllm.data.load_dataset", lambda name, **kw: data)
    return data


@pytest.fixture
def server(dataset):
    s = HostileServer({u: dataset.catalog[item] for u, item in OWN.items()})
    yield s
    s.close()


def evaluate(run_dir, base_url, *extra) -> int:
    return main(["eval", "--dataset", "tiny", "--model", "served-model", "--backend", "openai",
                 "--backend-option", f"base_url={base_url}", "--backend-option", "max_retries=0",
                 "--backend-option", "timeout=5", "--users", "all", "--batch-size", "8",
                 "--set", "baselines=[]", "--no-progress", "--output", str(run_dir), *extra])


def failed_users(run_dir) -> set[str]:
    return {s["user"] for s in read_records(run_dir / "samples.jsonl")
            if any((r or {}).get("error") for r in s["systems"].values())}


def test_malformed_replies_fail_only_their_users_and_resume_finishes_them(server, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert evaluate(run_dir, f"http://{server.host}/v1") == 0
    assert (run_dir / "results.json").exists()  # the run completed
    assert failed_users(run_dir) == set(MALFORMED)
    samples = {s["user"]: s for s in read_records(run_dir / "samples.jsonl")}
    assert samples["u6"]["systems"]["served-model"]["raw"] == ["1. Braveheart\n2. Fargo"]
    assert all(n == 1 for n in server.requests.values()) and len(server.requests) == len(OWN)
    assert evaluate(run_dir, f"http://{server.host}/v1", "--resume", "--retry-failed") == 0
    assert failed_users(run_dir) == set()
    assert {u: n for u, n in server.requests.items()} == {u: 2 if u in MALFORMED else 1 for u in OWN}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["users"]["evaluated"] == len(OWN)


def test_base_url_credentials_stay_out_of_every_run_file(server, tmp_path):
    run_dir = tmp_path / "run"
    url = f"http://bob:pw-hidden-1@{server.host}/v1?api-key=qk-hidden-2"
    assert evaluate(run_dir, url, "--backend-option", "api_key=sk-hidden-3",
                    "--backend-option", 'extra_body={"metadata": {"token": "tk-hidden-4"}}') == 0
    assert server.paths[0].endswith("?api-key=qk-hidden-2")  # the key still reaches the server
    written = "".join(p.read_text() for p in run_dir.iterdir() if p.is_file())
    assert server.host in written
    assert not any(f"hidden-{i}" in written for i in range(1, 5))
