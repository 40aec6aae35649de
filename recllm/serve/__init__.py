"""`recllm serve`: the recommender as an HTTP API (FastAPI under uvicorn) with a page to try it.

    app.py       the app factory: routes, request models, error handlers, auth, body limit
    batching.py  gathers concurrent requests into backend batches; bounded queue, timeouts
    metrics.py   Prometheus counters and histograms on a per-app registry
    static/      the page at / (plain HTML + a little JS, no build step)

Every recommendation goes through recllm.recommend.Recommender, as `recllm recommend` does.
"""

from recllm.serve.app import ServeOptions, create_app

__all__ = ["ServeOptions", "create_app"]
