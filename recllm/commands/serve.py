"""`recllm serve --catalog ml-100k --model smollm2-135m-instruct`: the recommender over HTTP.

POST /v1/recommend {"history": ["Toy Story", "Fargo"], "k": 5}; GET /v1/items?q=toy (title
search); GET /healthz; GET /metrics (Prometheus); OpenAPI docs at /docs; a page to try it at /.
The catalog, its matcher and the model load once. Listening beyond loopback needs a bearer
token (--token-env NAME names the environment variable holding it) or --insecure.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from recllm.errors import RecllmError

_PREFIX = "serve_"


def add_parser(subparsers) -> None:
    from recllm.commands._flags import add_model_flags
    from recllm.commands.recommend import add_recommender_flags
    from recllm.serve.app import ServeOptions

    p = subparsers.add_parser("serve", help="serve recommendations over HTTP (FastAPI), with a page to try them",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recommender_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-env", metavar="NAME", help="environment variable holding the bearer token clients must send")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without a token")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_model_flags(p.add_argument_group("serving"), ServeOptions, prefix=_PREFIX)
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    token = os.environ.get(env_name, "").strip()
    if not token:
        raise RecllmError(f"environment variable {env_name} is not set or empty", where="--token-env",
                          hint=f"export {env_name}=<a long random string>, e.g. from `openssl rand -hex 32`")
    return token


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless told to."""
    if token is None and not insecure and not is_loopback(host):
        raise RecllmError(f"refusing to listen on {host} without a token: anyone who can reach it could use the model",
                          where="--host", hint="pass --token-env NAME (clients send Authorization: Bearer <token>), "
                                               "or --insecure if the network is private")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from recllm.commands._flags import model_values
    from recllm.commands.recommend import build_recommender
    from recllm.serve.app import ServeOptions, create_app

    token = token_from(args.token_env)
    check_exposure(args.host, token, args.insecure)
    options = ServeOptions.parse(model_values(args, ServeOptions, prefix=_PREFIX), where="command line")
    recommender = build_recommender(args)
    print(f"recllm serve: {recommender.identity['catalog']} ({recommender.identity['catalog_items']} items), "
          f"{recommender.identity['model'] or args.backend}; http://{args.host}:{args.port}/ "
          f"(docs at /docs{', token required' if token else ''})", file=sys.stderr)
    try:
        uvicorn.run(create_app(recommender, options, token=token), host=args.host, port=args.port,
                    log_level=args.log_level)
    finally:
        recommender.close()
    return 0
