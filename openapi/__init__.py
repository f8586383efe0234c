"""The OpenAPI 3 document, generated from the views' metadata and marshmallow schemas."""
