"""The HTTP API through FastAPI's test client: the happy path, and every kind of bad input
answered 4xx/5xx with a short message naming the field, the server staying up."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from recllm.commands.serve import check_exposure, is_loopback, token_from
from recllm.errors import RecllmError
from recllm.recommend import Recommender, RecommendSettings
from recllm.serve import ServeOptions, create_app

ANSWER = "1. Heat (1995)\n2. Fargo (1996)\n3. Star Wars (1977)\n4. Braveheart (1995)\n5. Jumanji (1995)"


def recommender(dataset, backend=None):
    settings = RecommendSettings(backend="scripted", backend_options={"answers": {}, "default": ANSWER})
    rec = Recommender(dataset, settings)
    if backend is not None:
        rec.backend = backend
        for llm in rec._llms.values():
            llm.backend = backend
    return rec


@pytest.fixture
def client(tiny_dataset):
    with TestClient(create_app(recommender(tiny_dataset))) as c:
        yield c


def test_recommend_happy_path(client):
    r = client.post("/v1/recommend", json={"history": ["Toy Story", "Fargo"], "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["item_id"] for i in body["items"]] == ["4", "7", "11"]
    assert not {"1", "8"} & {i["item_id"] for i in body["items"]}
    assert body["history"]["unmatched"] == []


def test_items_search_healthz_docs_page(client):
    assert [i["item_id"] for i in client.get("/v1/items", params={"q": "star"}).json()["items"]] == ["7"]
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/v1/recommend" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_metrics_are_prometheus_text(client):
    client.post("/v1/recommend", json={"history": ["Fargo"], "k": 2})
    client.post("/v1/recommend", json={"history": ["Fargo"], "k": 0})
    text = client.get("/metrics").text
    assert 'recllm_requests_total{route="/v1/recommend",status="200"} 1.0' in text
    assert 'recllm_errors_total{kind="validation"} 1.0' in text
    assert "recllm_batch_size_count 1.0" in text and "recllm_request_seconds_bucket" in text


def test_all_unmatched_history_is_200_with_the_unmatched_titles(client):
    r = client.post("/v1/recommend", json={"history": ["Qqqq Zzzz", "Not A Film At All"], "k": 3})
    assert r.status_code == 200
    assert r.json()["items"] == [] and r.json()["history"]["unmatched"] == ["Qqqq Zzzz", "Not A Film At All"]


@pytest.mark.parametrize("body, field", [
    ({"history": [], "k": 3}, "history"),
    ({"k": 3}, "history"),
    ({"history": ["Fargo"], "k": 0}, "k"),
    ({"history": ["Fargo"], "k": 13}, "k"),  # beyond the 12-item catalog
    ({"history": ["Fargo"], "k": 101}, "k"),
    ({"history": ["Fargo"], "k": "five"}, "k"),
    ({"history": ["Fargo"], "colour": "red"}, "colour"),
    ({"history": ["x" * 301]}, "history.0"),
    ({"history": ["Fargo"] * 201}, "history"),
    ({"history_ids": ["999"]}, "history_ids[0]"),
    ({"history": ["Fargo"], "candidates": []}, "candidates"),
])
def test_bad_bodies_are_422_naming_the_field(client, body, field):
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and "\n" not in r.json()["error"] and "Traceback" not in r.text


def test_broken_json_non_utf8_and_huge_bodies(client):
    r = client.post("/v1/recommend", content=b'{"history": ["Fargo"', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    r = client.post("/v1/recommend", content=b'{"history": ["\xff\xfe Fargo"]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "the body is not UTF-8 (byte 14)"
    r = client.post("/v1/recommend", content=b'{"history": ["Fargo"]}', headers={"content-type": "text/plain"})
    assert r.status_code == 422 and "JSON object" in r.json()["error"]
    r = client.post("/v1/recommend", content=b"x" * (10 * 2**20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over" in r.json()["error"]
    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"x" * 2048
    r = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/healthz").status_code == 200


def test_bad_search_queries(client):
    assert client.get("/v1/items").status_code == 422
    assert client.get("/v1/items", params={"q": "a", "limit": 0}).json()["field"] == "limit"


def test_token_auth(tiny_dataset):
    app = create_app(recommender(tiny_dataset), token="s3cret")
    with TestClient(app) as c:
        body = {"history": ["Fargo"], "k": 2}
        assert c.post("/v1/recommend", json=body).status_code == 401
        r = c.post("/v1/recommend", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/recommend", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/v1/items", params={"q": "x"}).status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


class Broken:
    name = "broken"

    def generate(self, requests):
        raise RuntimeError("engine fell over")

    def close(self):
        pass


class Slow(Broken):
    def __init__(self, seconds: float = 0.0, gate: threading.Event | None = None):
        self.seconds, self.gate, self.inner = seconds, gate, None

    def generate(self, requests):
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.seconds)
        return self.inner.generate(requests)


def test_backend_error_is_502_and_the_server_stays_up(tiny_dataset):
    with TestClient(create_app(recommender(tiny_dataset, Broken()))) as c:
        r = c.post("/v1/recommend", json={"history": ["Fargo"], "k": 2})
        assert r.status_code == 502 and "engine fell over" in r.json()["error"]
        assert c.get("/healthz").status_code == 200


def test_backend_timeout_is_504(tiny_dataset):
    rec = recommender(tiny_dataset)
    slow = Slow(0.5)
    slow.inner = rec.backend
    rec = recommender(tiny_dataset, slow)
    with TestClient(create_app(rec, ServeOptions(timeout_s=0.05))) as c:
        r = c.post("/v1/recommend", json={"history": ["Fargo"], "k": 2})
        assert r.status_code == 504 and "no answer within" in r.json()["error"]
        assert c.get("/healthz").status_code == 200


def test_full_queue_is_503_with_retry_after_then_recovers(tiny_dataset):
    gate = threading.Event()
    rec = recommender(tiny_dataset)
    held = Slow(0.0, gate)
    held.inner = rec.backend
    rec = recommender(tiny_dataset, held)
    app = create_app(rec, ServeOptions(max_batch=1, max_queue=1, batch_window_ms=0))
    with TestClient(app) as c:
        body = {"history": ["Fargo"], "k": 2}
        codes: list[int] = []
        workers = [threading.Thread(target=lambda: codes.append(c.post("/v1/recommend", json=body).status_code))
                   for _ in range(2)]
        for w in workers:  # one runs (held at the gate), one waits in the queue
            w.start()
            deadline = time.monotonic() + 5
            while not (app.state.batcher.busy or app.state.batcher.depth) and time.monotonic() < deadline:
                time.sleep(0.005)
        while app.state.batcher.depth < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        r = c.post("/v1/recommend", json=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        gate.set()
        for w in workers:
            w.join(5)
        assert codes == [200, 200]
        assert c.post("/v1/recommend", json=body).status_code == 200  # recovered


def test_exposure_rules(monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", "tok", False)
    check_exposure("0.0.0.0", None, True)
    with pytest.raises(RecllmError, match="refusing to listen"):
        check_exposure("0.0.0.0", None, False)
    monkeypatch.delenv("RECLLM_TEST_TOKEN", raising=False)
    with pytest.raises(RecllmError, match="not set"):
        token_from("RECLLM_TEST_TOKEN")
    monkeypatch.setenv("RECLLM_TEST_TOKEN", "abc")
    assert token_from("RECLLM_TEST_TOKEN") == "abc" and token_from(None) is None


def test_cli_serve_refuses_an_exposed_host_without_a_token(capsys, monkeypatch):
    from recllm.cli import main

    assert main(["serve", "--catalog", "ml-100k", "--host", "0.0.0.0", "--backend", "scripted"]) == 2
    assert "refusing to listen on 0.0.0.0 without a token" in capsys.readouterr().err
    monkeypatch.delenv("RECLLM_TEST_TOKEN", raising=False)
    assert main(["serve", "--catalog", "ml-100k", "--token-env", "RECLLM_TEST_TOKEN", "--backend", "scripted"]) == 2
    assert "RECLLM_TEST_TOKEN is not set" in capsys.readouterr().err
