"""Redaction: URL userinfo and secret query values, secret-looking keys at any depth, known
secrets inside free text; settings that merely mention tokens stay readable."""

from __future__ import annotations

import pytest

from recllm.redact import is_secret_key, redact, redact_text, redact_url, secret_values


@pytest.mark.parametrize("key", ["api_key", "apiKey", "x-api-key", "key", "hf_token", "access_token",
                                 "password", "client_secret", "Authorization", "db.password", "sig"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_tokens", "max_new_tokens", "prompt_tokens", "api_key_env", "model",
                                 "base_url", "key_field", "keys", "tokenizer", "author"])
def test_plain_keys(key):
    assert not is_secret_key(key)


def test_url_userinfo_and_query_keys():
    assert redact_url("https://bob:hunter22@api.example.com/v1") == "https://***@api.example.com/v1"
    assert redact_url("https://TOKEN123@host/v1") == "https://***@host/v1"
    assert (redact_url("https://host/openai/v1?api-version=2024&api-key=abc123")
            == "https://host/openai/v1?api-version=2024&api-key=***")
    plain = "http://127.0.0.1:8000/v1?x=1"
    assert redact_url(plain) == plain and redact_url("not a url") == "not a url"


def test_redact_is_a_deep_copy():
    config = {"backend_options": {"api_key": "sk-1", "api_key_env": "OPENAI_API_KEY", "max_tokens": 9,
                                  "base_url": "https://u:pw@h/v1", "extra_body": {"metadata": {"token": "t0k"}},
                                  "headers": [{"Authorization": "Bearer zzz"}], "empty_key": None}}
    out = redact(config)
    opts = out["backend_options"]
    assert opts["api_key"] == "***" and opts["api_key_env"] == "OPENAI_API_KEY" and opts["max_tokens"] == 9
    assert opts["base_url"] == "https://***@h/v1" and opts["extra_body"] == {"metadata": {"token": "***"}}
    assert opts["headers"] == [{"Authorization": "***"}] and opts["empty_key"] is None
    assert config["backend_options"]["api_key"] == "sk-1"  # the input is untouched


def test_redact_text_masks_known_secrets_and_urls():
    secrets = secret_values({"api_key": "sk-live-1234", "base_url": "https://u:pw99@h/v1?key=qq11"})
    assert set(secrets) == {"sk-live-1234", "u", "pw99", "qq11", "dTpwdzk5"}  # the last: Basic u:pw99
    text = "HTTP 401 from https://u:pw99@h/v1/chat?key=qq11: bad key sk-live-1234 (pw99)"
    out = redact_text(text, secrets)
    assert "sk-live-1234" not in out and "pw99" not in out and "qq11" not in out
    assert out.startswith("HTTP 401 from https://***@h/v1/chat?key=***: bad key ***") and "(***)" in out
    assert redact_text("a cat", ["a"]) == "a cat"  # too short to be a secret worth masking
