"""Prometheus metrics of one app, on its own CollectorRegistry (two apps in one process, as in
the tests, never collide): requests by route and status, latency, backend batch sizes,
errors by kind, and the queue's depth."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recllm_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("recllm_request_seconds", "time to answer an HTTP request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("recllm_batch_size", "recommend requests gathered into one backend batch",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.errors = Counter("recllm_errors", "refused or failed requests by kind", ["kind"], registry=r)
        self.queue = Gauge("recllm_queue_depth", "recommend requests waiting for a batch", registry=r)

    def text(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Observe:
    """ASGI middleware: counts every HTTP request by its route template (not the raw path, so
    404 probes cannot grow the label set) and times it."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), {"code": 500}

        async def tracked(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            self.metrics.requests.labels(route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
