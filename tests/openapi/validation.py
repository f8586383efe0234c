"""Judging instances by the OpenAPI document, with openapi-schema-validator (the validator
openapi-core uses)."""

import copy

from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker


def resolve(document: dict, node, depth: int = 0):
    """`node` with every local $ref replaced by its target (the document has no cycles)."""
    assert depth < 50
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve(document, copy.deepcopy(target), depth + 1)
        return {key: resolve(document, value, depth + 1) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(document, value, depth + 1) for value in node]
    return node


def component(document: dict, name: str) -> dict:
    """A schema of components/schemas, resolved."""
    return resolve(document, {"$ref": f"#/components/schemas/{name}"})


def schema_errors(document: dict, schema: dict, instance, *,
                  validator=OAS30ReadValidator) -> list[str]:
    """What is wrong with `instance` by `schema` (an answer's, unless `validator` says)."""
    checker = validator(resolve(document, schema), format_checker=oas30_format_checker)
    return sorted(f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
                  for error in checker.iter_errors(instance))


def answer_errors(document: dict, method: str, template: str, response) -> list[str]:
    """What is wrong with a real answer, judged by its operation's documented answers."""
    operation = document["paths"][template][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return [f"status {response.status_code} is not documented"]
    content = documented.get("content", {})
    if response.mimetype not in content:
        return [f"{response.mimetype} is not documented for {response.status_code}"]
    return schema_errors(document, content[response.mimetype]["schema"], response.json)
