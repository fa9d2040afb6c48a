"""The errors of the audience package, each mapped to one HTTP answer by the routes."""

from __future__ import annotations


class InvalidDefinition(ValueError):
    """A definition that cannot be accepted; `fields` maps the bad node's path to a reason.

    Paths are JSON paths into the definition (`$.and[1].value`); for the text form the key is
    `query` and the message starts with the character offset (`offset 17: …`), also in `offset`.
    """

    code = "invalid_definition"

    def __init__(self, fields: dict[str, str], offset: int | None = None) -> None:
        self.fields = dict(fields)
        self.offset = offset
        first = next(iter(self.fields.items()), ("$", "invalid"))
        super().__init__(f"{first[0]}: {first[1]}")


class AudienceNotFound(LookupError):
    code = "not_found"


class AudienceConflict(ValueError):
    """The change would break an invariant (duplicate key, a deleted audience still referenced)."""

    code = "conflict"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message)
