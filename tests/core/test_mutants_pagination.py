"""Cursor validation (core/pagination.py) that a mutation review found no test pinned down:
the test here failed against a hand-made mutant and passes on the code as written."""

from itsdangerous import URLSafeSerializer

from tests.conftest import assert_validation_error, bearer


def test_a_signed_cursor_with_the_wrong_number_of_values_is_422(app, client, make):
    """A cursor the service signed for the family list holds two values (a time and an id).
    One signed with the service's key for that list but holding one value, or three, is not
    a cursor it issued: 422 naming `cursor`, never a 500 (mutant: the number of values not
    checked). Made here with the test suite's own secret, as only the key's holder can."""
    token = bearer(make.token(make.organization(type="pediatric_primary_care"),
                              ["families:read"]))
    signer = URLSafeSerializer(app.config["SECRET_KEY"], salt="cursor:families")
    at, family_id = "2026-12-07T12:00:00+00:00", "00000000-0000-4000-8000-000000000000"
    issued_like = client.get("/api/v1/families", query_string={"cursor": signer.dumps(
        [at, family_id])}, headers=token)
    assert issued_like.status_code == 200, issued_like.json

    for values in ([at], [at, family_id, "extra"]):
        answer = client.get("/api/v1/families", query_string={"cursor": signer.dumps(values)},
                            headers=token)
        assert_validation_error(answer, "cursor")
