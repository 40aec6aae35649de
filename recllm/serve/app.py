"""The FastAPI app: POST /v1/recommend, GET /v1/items, /healthz, /metrics, OpenAPI at /docs, the page at /.

Bad input never gets a 500 or a traceback: request bodies are pydantic models that refuse
unknown fields and bound every size; validation errors come back as one short line naming the
field; a body over `max_body_bytes` is refused (413) before it is parsed; a full queue is 503
with Retry-After, a request past its timeout 504, an engine failure 502, and the server stays up.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException

from recllm.errors import RecllmError
from recllm.options import StrictOptions
from recllm.recommend import BackendFailed, Query as RecQuery, Recommender
from recllm.serve.batching import Batcher, QueueFull
from recllm.serve.metrics import Metrics, Observe

STATIC = Path(__file__).parent / "static"
MAX_HISTORY, MAX_K, MAX_TITLE, MAX_CANDIDATES, MAX_ID = 200, 100, 300, 1000, 100
log = logging.getLogger("recllm.serve")

Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE)]
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]


class ServeOptions(StrictOptions):
    """Server settings (`recllm serve --help` shows each as a flag)."""

    max_batch: int = Field(8, ge=1, le=1024, description="most requests in one backend batch")
    batch_window_ms: float = Field(10.0, ge=0, le=10_000, description="how long to gather a batch after its first request")
    max_queue: int = Field(64, ge=1, le=100_000, description="waiting requests beyond which new ones get 503")
    timeout_s: float = Field(120.0, gt=0, description="per-request limit, waiting and running (504 past it)")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="larger request bodies are refused (413) unread")
    retry_after_s: int = Field(1, ge=1, description="Retry-After of a 503")


class RecommendBody(BaseModel):
    """A recommendation request: the history as titles (grounded with the catalog's matcher)
    and/or catalog ids; `candidates` (ids) to rank instead of the whole catalog."""

    model_config = ConfigDict(extra="forbid")

    history: list[Title] = Field(default_factory=list, max_length=MAX_HISTORY,
                                 description="titles as people write them, oldest first")
    history_ids: list[ItemId] = Field(default_factory=list, max_length=MAX_HISTORY,
                                      description="catalog item ids (from /v1/items), oldest first")
    k: int = Field(10, ge=1, le=MAX_K, description="how many items to recommend")
    candidates: list[ItemId] | None = Field(None, min_length=1, max_length=MAX_CANDIDATES,
                                            description="item ids to rank (default: the whole catalog, "
                                                        "or the retriever's top items in score mode)")
    explain: bool = Field(False, description="a one-line reason per item")

    @model_validator(mode="after")
    def _some_history(self) -> "RecommendBody":
        if not self.history and not self.history_ids:
            raise ValueError("the history is empty: give at least one title (or history_ids)")
        return self


def create_app(recommender: Recommender, options: ServeOptions | None = None, *,
               token: str | None = None) -> FastAPI:
    """The app around one loaded recommender; `token` turns on bearer-token auth for /v1 and /metrics."""
    opts = options or ServeOptions()
    metrics = Metrics()
    batcher = Batcher(recommender.recommend_many, max_batch=opts.max_batch,
                      window_s=opts.batch_window_ms / 1000, max_queue=opts.max_queue,
                      on_batch=metrics.batch_size.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="recllm", summary="LLM recommendations from a catalog and a history",
                  version=_version(), lifespan=lifespan)
    app.state.recommender, app.state.batcher, app.state.metrics = recommender, batcher, metrics

    def fail(status: int, kind: str, message: str, field: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)

    async def authorized(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer ...)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        err = (exc.errors() or [{}])[0]
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query")]
        field = ".".join(loc) or None
        kind = err.get("type", "")
        if kind == "json_invalid":
            msg = "the body is not valid JSON" + (f" ({err['ctx']['error']})" if err.get("ctx") else "")
        elif kind == "extra_forbidden":
            msg = f"unknown field {field!r}; known: {', '.join(RecommendBody.model_fields)}"
        elif field is None and kind in ("model_attributes_type", "dict_type"):
            msg = "the body must be a JSON object (Content-Type: application/json)"
        else:
            msg = f"{field}: {err.get('msg', 'invalid')}" if field else str(err.get("msg", "invalid request"))
        if kind == "value_error" and not loc:
            field = "history"
        return fail(422, "validation", msg.replace("Value error, ", ""), field)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        kind = {401: "auth", 413: "too_large", 404: "not_found", 405: "method"}.get(exc.status_code, "http")
        return fail(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return fail(500, "internal", "internal error; the server logged it")

    @app.get("/healthz", summary="liveness, what is loaded, the queue")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **recommender.identity, "queue": batcher.depth, "busy": batcher.busy}

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(authorized)],
             response_class=Response)
    async def prometheus() -> Response:
        metrics.queue.set(batcher.depth)
        body, kind = metrics.text()
        return Response(body, media_type=kind)

    @app.get("/v1/items", summary="search the catalog by title", dependencies=[Depends(authorized)])
    def items(q: Annotated[str, Query(min_length=1, max_length=MAX_TITLE)],  # sync: runs off the event loop
                    limit: Annotated[int, Query(ge=1, le=50)] = 10) -> dict[str, Any]:
        return {"query": q, "items": recommender.search(q, limit)}

    @app.post("/v1/recommend", summary="recommend catalog items for a history",
              dependencies=[Depends(authorized)])
    async def recommend(body: RecommendBody):
        query = RecQuery(history=tuple(body.history), history_ids=tuple(body.history_ids), k=body.k,
                         candidates=tuple(body.candidates) if body.candidates is not None else None,
                         explain=body.explain)
        try:
            return await batcher.submit(query, opts.timeout_s)
        except QueueFull as exc:
            return fail(503, "queue_full", f"busy: {exc}; retry later", headers={"Retry-After": str(opts.retry_after_s)})
        except TimeoutError:
            return fail(504, "timeout", f"no answer within {opts.timeout_s:g} s; the model is too slow or too busy")
        except BackendFailed as exc:
            return fail(502, "backend", exc.message)
        except RecllmError as exc:  # the query itself (k beyond the catalog, unknown ids ...)
            return fail(422, "validation", exc.message, exc.where)
        except Exception as exc:  # the engine's own exception, for the whole batch
            log.exception("backend failure")
            return fail(502, "backend", f"the model failed: {type(exc).__name__}: {exc}"[:300])

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes,
                       on_refuse=lambda kind: metrics.errors.labels(kind).inc())
    app.add_middleware(Observe, metrics=metrics)
    return app


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` is refused with 413, by its Content-Length
    before anything is read, or as soon as the chunks received pass the limit; a JSON body
    that is not UTF-8 is refused with 400 naming the byte. The body (bounded) is read whole
    here and handed on as one message."""

    def __init__(self, app, max_bytes: int, on_refuse=None):
        self.app, self.max_bytes, self.on_refuse = app, max_bytes, on_refuse

    async def _refuse(self, scope, receive, send, status: int, message: str, kind: str):
        if self.on_refuse is not None:
            self.on_refuse(kind)
        await JSONResponse({"error": message, "field": None}, status_code=status)(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = f"the request body is over {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send, 413, too_big, "too_large")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send, 413, too_big, "too_large")
        body = b"".join(chunks)
        if b"json" in headers.get(b"content-type", b""):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                return await self._refuse(scope, receive, send, 400, f"the body is not UTF-8 (byte {exc.start})",
                                          "encoding")
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # http.disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _version() -> str:
    from recllm import __version__

    return __version__
