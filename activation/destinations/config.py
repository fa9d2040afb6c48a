"""Reading destination config dicts into typed values, collecting field errors on the way."""

from __future__ import annotations

import re
from collections.abc import Collection

from yarl import URL

from activation.destinations.base import Config, PermanentError


class ConfigReader:
    """Reads fields one by one; every problem lands in `errors` (field → message)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.errors: dict[str, str] = {}

    def text(
        self,
        name: str,
        *,
        default: str | None = None,
        pattern: str | None = None,
        choices: Collection[str] | None = None,
    ) -> str:
        value = self.config.get(name, default)
        if value is None or value == "":
            self.errors[name] = "is required"
            return ""
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return ""
        if pattern is not None and not re.fullmatch(pattern, value):
            self.errors[name] = f"must match {pattern}"
        if choices is not None and value not in choices:
            self.errors[name] = f"must be one of {', '.join(sorted(choices))}"
        return value

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self.config.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors[name] = "must be an integer"
            return default
        if not low <= value <= high:
            self.errors[name] = f"must be between {low} and {high}"
            return default
        return value

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.config.get(name, default)
        if not isinstance(value, bool):
            self.errors[name] = "must be true or false"
            return default
        return value

    def url(self, name: str, *, default: str | None = None) -> str:
        """An absolute http(s) URL without credentials, query or fragment; trailing `/` removed."""
        text = self.text(name, default=default)
        if not text:
            return ""
        try:
            parsed = URL(text)
        except ValueError:
            self.errors[name] = "is not a valid URL"
            return ""
        if parsed.scheme not in ("http", "https") or not parsed.host:
            self.errors[name] = "must be an absolute http or https URL"
        elif parsed.user or parsed.password or parsed.query_string or parsed.fragment:
            self.errors[name] = "must not contain credentials, a query or a fragment"
        return text.rstrip("/")


def require_valid(errors: dict[str, str]) -> None:
    """Raise collected field errors as a PermanentError (used at send time)."""
    if errors:
        fields = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        raise PermanentError(f"invalid destination config ({fields})")
