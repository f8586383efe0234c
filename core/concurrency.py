"""Optimistic concurrency: strong ETags naming an object's version, and the conditional
headers of a change (RFC 9110 13.1)."""

from dataclasses import dataclass

from core.errors import Problem


def etag_for(version: int) -> str:
    """A strong ETag naming an object's version; the same for every viewer."""
    return f'"v{version}"'


@dataclass(frozen=True)
class Preconditions:
    """A change's If-Match and If-None-Match, as sent (None: absent)."""

    if_match: str | None = None
    if_none_match: str | None = None

    @classmethod
    def of(cls, headers) -> "Preconditions":
        return cls(headers.get("If-Match"), headers.get("If-None-Match"))


def _tags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",")]


def check_preconditions(preconditions: Preconditions, version: int, *, required: bool,
                        audit: dict | None = None) -> None:
    """Judge a change's conditional headers against the current version (RFC 9110 13.2.2):
    428 when If-Match is required and absent, 412 when it is stale, and 412 when If-None-Match
    is `*` or names the current version (weakly: RFC 9110 13.1.2), as the object exists.
    `audit`: what the refusal's event adds to the request's own (the family it concerns)."""
    if_match, if_none_match = preconditions.if_match, preconditions.if_none_match
    if if_match is None:
        if required:
            raise Problem("precondition-required", "Send If-Match with the ETag you last read",
                          audit=audit)
    else:
        tags = _tags(if_match)
        if "*" not in tags and etag_for(version) not in tags:
            raise Problem("precondition-failed",
                          "The object has changed since you read it; read it again and retry",
                          audit=audit)
    if if_none_match is not None:
        tags = {tag.removeprefix("W/") for tag in _tags(if_none_match)}
        if "*" in tags or etag_for(version) in tags:
            raise Problem("precondition-failed",
                          "If-None-Match names this object's current version (or *): it "
                          "exists as it is, and nothing was changed", audit=audit)
