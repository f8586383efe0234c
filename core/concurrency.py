"""Optimistic concurrency: strong ETags naming an object's version, and If-Match."""

from core.errors import Problem


def etag_for(version: int) -> str:
    """A strong ETag naming an object's version; the same for every viewer."""
    return f'"v{version}"'


def check_if_match(if_match: str | None, version: int, *, required: bool,
                   audit: dict | None = None) -> None:
    """Compare If-Match with the current version: 428 when required and absent, 412 when stale.
    `audit`: what the refusal's event adds to the request's own (the family it concerns)."""
    if if_match is None:
        if required:
            raise Problem("precondition-required", "Send If-Match with the ETag you last read",
                          audit=audit)
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" not in tags and etag_for(version) not in tags:
        raise Problem("precondition-failed",
                      "The object has changed since you read it; read it again and retry",
                      audit=audit)
