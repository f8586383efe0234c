"""Operation metadata on views, read by the OpenAPI generator; the schemas are the ones used."""


def operation(*, summary: str, tags: list[str], description: str | None = None,
              query=None, body=None, form=None, responses: dict | None = None,
              errors: tuple[int, ...] = (), headers: dict | None = None,
              parameters: list[dict] | None = None):
    """Describe a view for the OpenAPI document.

    `query`/`body` are the input schemas the view loads, `form` a form-encoded body schema,
    `responses` maps status to output schema (or None for no body), `errors` lists the
    problem statuses the view itself can answer beyond the ones implied by its inputs and scope,
    `headers` maps status to response headers ({name: description}), `parameters` adds
    header parameters such as IF_MATCH_OPTIONAL.
    """

    def decorator(view):
        view.openapi = {
            "summary": summary,
            "description": description or (view.__doc__ or "").strip() or None,
            "tags": tags,
            "query": query,
            "body": body,
            "form": form,
            "responses": responses or {},
            "errors": errors,
            "headers": headers or {},
            "parameters": parameters or [],
        }
        return view

    return decorator


IF_MATCH_OPTIONAL = {
    "in": "header", "name": "If-Match", "required": False,
    "description": "The ETag last read; when given and stale, the change is refused with 412.",
    "schema": {"type": "string", "maxLength": 1024},
}

IF_NONE_MATCH = {
    "in": "header", "name": "If-None-Match", "required": False,
    "description": "RFC 9110 13.1.2: `*`, or ETags of which one is current, refuses the "
                   "change with 412 (the object exists as it is).",
    # No maxLength: a longer list of ETags is judged like any (gunicorn caps a header).
    "schema": {"type": "string"},
}

IF_MATCH_REQUIRED = {
    "in": "header", "name": "If-Match", "required": True,
    "description": "The ETag last read: 428 without it, 412 when the object has changed. "
                   "`*` (RFC 9110: any version) is accepted and gives that protection up: "
                   "send it only to move the referral whatever happened since.",
    "schema": {"type": "string", "maxLength": 1024},
}
