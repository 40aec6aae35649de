"""Keep credentials out of everything recllm writes or prints: configs, results, cache keys,
error texts. Three calls:

    redact_url("https://user:pw@host/v1?api-key=abc&x=1")  -> "https://***@host/v1?api-key=***&x=1"
    redact({"api_key": "sk-1", "base_url": "...", "max_tokens": 9})  -> secrets as "***" (a deep copy)
    redact_text("HTTP 401 ... sk-1 ...", ["sk-1"])  -> every known secret and URL credential masked

A key is secret when one of its words (split at _ - . and camelCase) is a secret word, or
when it ends in "key"/"token" (api_key, hf_token, x-api-key, apiKey); "max_tokens" and
"api_key_env" (the NAME of a variable) are not secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

MASK = "***"
SECRET_WORDS = {"password", "passwd", "pwd", "secret", "credential", "credentials", "auth",
                "authorization", "bearer", "cookie", "signature", "sig", "apikey", "accesskey"}
LAST_WORDS = {"key", "token"}  # secret only as the last word: api_key yes, key_field no
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{},]+")


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)  # apiKey -> api Key
    return [w for w in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a field or query-parameter name holds a credential (see module docstring)."""
    words = _words(str(key))
    if not words or words[-1] == "env":  # api_key_env names a variable; its value is no secret
        return False
    return words[-1] in LAST_WORDS or any(w in SECRET_WORDS for w in words)


def redact_url(url: str) -> str:
    """`url` with its userinfo and secret-looking query values replaced by ***; other text unchanged."""
    try:
        parts = urlsplit(url)
        host = parts.netloc
    except ValueError:  # not parseable as a URL: leave it to redact_text's known secrets
        return url
    if "@" in host:
        host = MASK + "@" + host.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = "&".join(f"{quote(k, safe='-_.~')}=" + (MASK if is_secret_key(k) else quote(v, safe="-_.~/"))
                             for k, v in pairs)
    if host == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secret pieces of a URL (user, password, secret query values), for redact_text."""
    try:
        parts = urlsplit(url)
        found = [p for p in (parts.username, parts.password) if p]
        if found:  # httpx sends userinfo as Basic auth, which a server may quote back
            basic = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            found.append(base64.b64encode(basic.encode()).decode())
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_secret_key(k) and v]
    except ValueError:
        return []
    return found


def redact(obj: Any) -> Any:
    """A deep copy of dicts/lists/tuples with secret keys' values (when set) and URL credentials
    masked. Scalars other than strings come back as they are."""
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_key(k) and obj[k] not in (None, "", {}, []) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str) and "://" in obj:
        return redact_text(obj)
    return obj


def secret_values(obj: Any) -> list[str]:
    """Every string held under a secret key (at any depth) or inside a URL's credentials."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if is_secret_key(k) and isinstance(v, str | int) and str(v):
                found.append(str(v))
            elif is_secret_key(k):
                found += [s for s in _strings(v)]
            else:
                found += secret_values(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            found += secret_values(v)
    elif isinstance(obj, str) and "://" in obj:
        for url in URL.findall(obj):
            found += url_secrets(url)
    return found


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list | tuple):
        return [s for v in obj for s in _strings(v)]
    return [str(obj)] if obj not in (None, "") else []


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every URL's credentials masked and each known secret (4+ characters, so a
    stray 'a' does not blank the text) replaced by ***."""
    text = URL.sub(_redact_match, text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, MASK)
    return text


def _redact_match(match: re.Match) -> str:
    url = match.group(0)
    bare = url.rstrip(".,:;!?")  # "from https://h/v1: ..." -- the colon ends the sentence, not the URL
    return redact_url(bare) + url[len(bare):]
