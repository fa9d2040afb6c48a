"""Keep secrets out of anything stored, logged or answered: credential values, and the forms a platform
may echo them back in, are replaced by `***`.

For each secret of at least MIN_SECRET_CHARS characters a `Redactor` masks:
- the value itself, URL- or percent-encoded in any mix (`%XX` for any character, either hex case, `+`
  for a space) and JSON-escaped (`\\/`, `\\u00XX`);
- any base64 run (standard or URL-safe alphabet) that carries the encoding of the secret's first or
  last BASE64_PROBE_CHARS characters, at any alignment: the secret alone, `user:secret` as in HTTP
  Basic, a JSON document holding it, or such a run cut short by an excerpt.
`RedactingClient` applies it to error responses before a destination reads them, so an excerpt of an
echoed header is cut from text that is already masked.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping

from activation.net import HttpClient, HttpResponse

MIN_SECRET_CHARS = 4
MAX_ERROR_CHARS = 300
BASE64_PROBE_CHARS = 8
MASK = "***"
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{6,}={0,2}")


def _char_pattern(char: str) -> str:
    percent = "".join(f"%{byte:02x}" for byte in char.encode("utf-8"))
    forms = [re.escape(char), f"(?i:{percent})"]
    forms += [f"(?i:\\\\u{ord(char):04x})"] if ord(char) < 0x10000 else []
    forms += [r"\+"] if char == " " else []
    forms += [r"\\/"] if char == "/" else []
    return "(?:" + "|".join(forms) + ")"


def literal_pattern(secret: str) -> str:
    """The secret as written, or with any of its characters percent-encoded or JSON-escaped."""
    return "".join(_char_pattern(c) for c in secret)


def base64_cores(secret: str) -> set[str]:
    """Base64 substrings that every encoding of a text containing `probe` contains, per alignment."""
    cores: set[str] = set()
    for probe in {secret[:BASE64_PROBE_CHARS], secret[-BASE64_PROBE_CHARS:]}:
        raw = probe.encode("utf-8")
        for shift in range(3):
            text = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
            start = (0, 2, 3)[shift]  # characters that also depend on the padding bytes before
            end = len(text) - (1 if (shift + len(raw)) % 3 else 0)  # ... or on the bytes after
            core = text[start:end]
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return {c for c in cores if len(c) >= 6}


class Redactor:
    """Masks a fixed set of secrets (and their derived forms) in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.key = frozenset(secrets)
        values = sorted({s for s in self.key if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._literal = re.compile("|".join(literal_pattern(s) for s in values)) if values else None
        self._cores = frozenset(core for s in values for core in base64_cores(s))

    def scrub(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        if self._cores:
            text = _BASE64_RUN.sub(self._mask_run, text)
        return text

    def __call__(self, text: str) -> str:
        """`scrub`, truncated to MAX_ERROR_CHARS: for errors that are stored or logged."""
        return self.scrub(text)[:MAX_ERROR_CHARS]

    def _mask_run(self, match: re.Match[str]) -> str:
        run = match.group(0)
        return MASK if any(core in run for core in self._cores) else run


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret and its derived forms masked, truncated to MAX_ERROR_CHARS."""
    return Redactor(secrets)(text)


class RedactingClient:
    """An `HttpClient` whose error responses (status ≥ 400) come back with the secrets masked in their
    headers and body, so whatever a destination quotes from an echoing platform is already clean.
    Successful responses pass untouched: they carry data (ids, new tokens) that must stay intact."""

    def __init__(self, inner: HttpClient, secrets: Callable[[], Iterable[str]]) -> None:
        self.inner = inner
        self._secrets = secrets
        self._redactor = Redactor(())

    def redactor(self) -> Redactor:
        current = frozenset(self._secrets())
        if current != self._redactor.key:
            self._redactor = Redactor(current)
        return self._redactor

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        response = await self.inner.request(
            method, url, headers=headers, params=params, body=body, timeout_s=timeout_s
        )
        if response.status < 400:
            return response
        scrub = self.redactor().scrub
        clean_headers = {name: scrub(value) for name, value in response.headers.items()}
        clean_body = scrub(response.body.decode("utf-8", "replace")).encode("utf-8")
        return HttpResponse(response.status, clean_headers, clean_body)
