"""Typed option models that refuse unknown keys with a 'did you mean' (simonw/llm style)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from recllm.errors import RecllmError, did_you_mean


class StrictOptions(BaseModel):
    """Base for every options/config model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def parse(cls, data: dict[str, Any] | None, *, where: str | None = None):
        """Validate `data`, turning pydantic's errors into one readable RecllmError."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            raise RecllmError(_explain(cls, exc), where=where) from None


def _explain(cls: type[BaseModel], exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(str(err["loc"][-1]), cls.model_fields)
            lines.append(f"unknown option {field!r}{hint}; known: {', '.join(cls.model_fields)}")
        else:
            lines.append(f"option {field!r}: {err['msg']}")
    return "; ".join(lines)
