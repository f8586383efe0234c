"""What client authentication and the bearer check write to the application log: the request,
the address and the ids claimed, never a token, a secret or a secret's digest, at any
LOG_LEVEL."""

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from auth.models import ClientRecord
from tests.conftest import basic, bearer

FORM = {"grant_type": "client_credentials"}


def _record_text(record: logging.LogRecord) -> str:
    parts = [str(record.msg), repr(record.args), record.getMessage()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _leaks(records, needles) -> list:
    return sorted({(record.name, needle) for record in records for needle in needles
                   if needle in _record_text(record)})


def _token(client, oauth_client, secret, **form) -> str:
    response = client.post("/oauth/token", data={**FORM, **form},
                           headers=basic(oauth_client.client_id, secret))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["access_token"]


def test_no_credential_in_any_log_record_at_debug(client, make, caplog):
    """README: LOG_LEVEL takes DEBUG, and logs carry ids. authlib's debug lines carried every
    issued token (`Issue token {...}`), a live credential for whoever reads the logs (RFC 6819
    5.1.4.1.3), and the client's record with its secret digest."""
    clinic, clinic_secret = make.client(make.organization(name="Washtenaw Pediatrics"))
    provider, provider_secret = make.client(make.organization(name="Riverbend IMH"))
    with caplog.at_level(logging.DEBUG):
        clinic_token = _token(client, clinic, clinic_secret)
        provider_token = _token(client, provider, provider_secret, scope="directory:read")
        client.get("/api/v1/me", headers=bearer(clinic_token))
        client.post("/oauth/token", data=FORM, headers=basic(clinic.client_id, "wrong"))
        client.post("/oauth/token", data={**FORM, "client_id": clinic_secret,
                                          "client_secret": "x"})
        for token in (provider_token, clinic_token):
            client.post("/oauth/introspect", data={"token": token},
                        headers=basic(clinic.client_id, clinic_secret))
            client.post("/oauth/revoke", data={"token": token},
                        headers=basic(clinic.client_id, clinic_secret))
        client.get("/api/v1/me", headers=bearer(clinic_token + "x"))
        client.get("/api/v1/me", query_string={"access_token": provider_token})

    assert caplog.records, "nothing was logged: the test proves nothing"
    assert _leaks(caplog.records, (clinic_token, provider_token, clinic_secret,
                                   provider_secret, clinic.secret_hash,
                                   provider.secret_hash)) == []


def test_the_clients_record_keeps_its_secret_digest_out_of_its_repr():
    """authlib prints the client it authenticated (`Validate token request of %r`)."""
    record = ClientRecord(id=uuid.uuid4(), organization_id=uuid.uuid4(), scope="audit:read",
                          secret_hash="d" * 64)
    assert "d" * 64 not in repr(record)


_SERVED_WITH_DEBUG = r"""
import base64, json
import flask_migrate
from app import create_app
from auth.service import create_client
from core.db import db
from organizations.service import create_organization

app = create_app()
with app.app_context():
    flask_migrate.upgrade()
    organization = create_organization(name="Riverbend IMH", type="imh_provider",
                                       counties=["Washtenaw"], languages=["en"],
                                       accepting_referrals=False)
    issued = create_client(organization_id=organization.id, scopes=["directory:read"],
                           name="riverbend")
    db.session.commit()
    client_id, secret = issued.client.client_id, issued.client_secret
credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
answer = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                headers={"Authorization": "Basic " + credentials})
print(json.dumps({"status": answer.status_code, "token": answer.json.get("access_token"),
                  "secret": secret}))
"""


def test_the_service_started_with_log_level_debug_writes_no_token_to_its_log(
        empty_database):
    """The same as an operator runs it: LOG_LEVEL=DEBUG in the environment, the log on
    standard error."""
    env = {**os.environ, "APP_ENV": "test", "LOG_LEVEL": "DEBUG",
           "DATABASE_URL": empty_database, "SECRET_KEY": "k" * 20 + "0123456789abcdefXYZ",
           "AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_SEAL_INTERVAL_MS": "0",
           "AUDIT_SIGNING_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    ran = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", _SERVED_WITH_DEBUG], cwd=Path(__file__).resolve().parents[2],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    issued = json.loads(ran.stdout.strip().splitlines()[-1])
    assert issued["status"] == 200 and issued["token"]

    assert " DEBUG " in ran.stderr, "nothing was logged at DEBUG: the test proves nothing"
    assert issued["token"] not in ran.stderr
    assert issued["secret"] not in ran.stderr


def _auth_lines(records) -> list[str]:
    return [record.getMessage() for record in records if record.name.startswith("auth")]


@pytest.mark.parametrize(("claimed", "said"), [
    ("5b0c8a4e-4bb7-4a39-8a36-1f2f0e0d9c11", "unknown client 5b0c8a4e-4bb7-4a39-8a36-1f2f0e0d9c11"),
    ("a-secret-sent-as-the-id", "a malformed client id"),
    (None, "no client id"),
], ids=["unknown", "malformed", "none"])
def test_a_failed_client_authentication_of_no_known_client_is_logged_with_its_request(
        client, caplog, claimed, said):
    """Kept out of the audit trail (strangers could grow it), so the log line must tie the
    failure to a request and an address; the id claimed only when it is one, as anything
    else may be a secret sent in the wrong field."""
    headers = {"X-Request-ID": "trace-unknown-client-0001"}
    if claimed is not None:
        headers.update(basic(claimed, "guess"))
    with caplog.at_level(logging.INFO):
        response = client.post("/oauth/token", data=FORM, headers=headers,
                               environ_base={"REMOTE_ADDR": "192.0.2.44"})

    assert response.status_code == 401
    [line] = _auth_lines(caplog.records)
    assert "token endpoint" in line and said in line
    assert "trace-unknown-client-0001" in line and "192.0.2.44" in line
    assert "guess" not in line
    if claimed is not None and said == "a malformed client id":
        assert claimed not in line


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", None],
                         ids=["refused token", "no token"])
def test_a_refused_bearer_is_logged_with_its_request(client, caplog, authorization):
    """The API's anonymous 401s are kept out of the trail: the log line says which request."""
    headers = {"X-Request-ID": "trace-bad-bearer-0001"}
    if authorization:
        headers["Authorization"] = authorization
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/me", headers=headers,
                              environ_base={"REMOTE_ADDR": "192.0.2.45"})

    assert response.status_code == 401
    [line] = _auth_lines(caplog.records)
    assert "trace-bad-bearer-0001" in line and "192.0.2.45" in line
    assert "not-a-token" not in line
