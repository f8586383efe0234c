"""Operator commands print JSON, fail with a message and a non-zero exit, and change data."""

import json
import unicodedata
import uuid
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa

from core import time as clock
from core.cli import db_cli
from core.db import db
from tests.conftest import audit_events, basic, bearer


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=list(args))

    return invoke


def test_org_create_prints_the_organization(run):
    result = run("org", "create", "--name", "Kent County Early Head Start",
                 "--type", "early_head_start", "--county", "Kent", "--language", "en",
                 "--language", "es")
    assert result.exit_code == 0, result.output
    organization = json.loads(result.stdout)
    assert organization["name"] == "Kent County Early Head Start"
    assert organization["type"] == "early_head_start"
    assert organization["counties"] == ["Kent"]
    assert organization["languages"] == ["en", "es"]
    assert organization["accepting_referrals"] is False


def test_org_create_keeps_text_and_tags_as_the_api_does(run):
    """NFC, stripped, tags in canonical case: the same listing the API would keep."""
    result = run("org", "create", "--name", unicodedata.normalize("NFD", " Clínica Familiar "),
                 "--type", "imh_provider", "--county", " Wayne ", "--language", "ES-mx")
    assert result.exit_code == 0, result.output
    organization = json.loads(result.stdout)
    assert organization["name"] == unicodedata.normalize("NFC", "Clínica Familiar")
    assert organization["counties"] == ["Wayne"]
    assert organization["languages"] == ["es-MX"]


@pytest.mark.parametrize("args", [
    ["--name", "X", "--type", "school"],
    ["--name", "   ", "--type", "hospital"],
    ["--name", "Two\nLines", "--type", "hospital"],
    ["--name", "\u200b", "--type", "hospital"],
    ["--name", "X", "--type", "hospital", "--county", "Wayne", "--county", "Wayne "],
    ["--name", "X", "--type", "hospital", "--language", "not a tag"],
    ["--type", "hospital"],
    ["--name", "x" * 201, "--type", "hospital"],
    ["--name", "x" * 150 + "İ" * 50, "--type", "hospital"],  # 250 characters casefolded
])
def test_org_create_refuses_bad_options(run, args):
    result = run("org", "create", *args)
    assert result.exit_code != 0
    assert result.stdout == ""


def test_client_lifecycle(run, client):
    organization = json.loads(run("org", "create", "--name", "Clinic", "--type",
                                  "pediatric_primary_care").stdout)
    result = run("client", "create", "--organization", organization["id"],
                 "--scopes", "directory:read referrals:write")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["organization_id"] == organization["id"]
    assert created["scopes"] == ["directory:read", "referrals:write"]
    assert len(created["client_secret"]) >= 43  # 256 bits, URL-safe base64

    listed = json.loads(run("client", "list", "--organization", organization["id"]).stdout)
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]
    assert created["client_secret"] not in run("client", "list").stdout

    credentials = basic(created["client_id"], created["client_secret"])
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=credentials)
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json['access_token']}"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200

    revoked = run("client", "revoke", created["client_id"])
    assert revoked.exit_code == 0
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    again = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=credentials)
    assert again.status_code == 401
    assert again.json["error"] == "invalid_client"


@pytest.mark.parametrize("args", [
    ["client", "create", "--organization", "00000000-0000-4000-8000-000000000000",
     "--scopes", "directory:read"],
    ["client", "create", "--organization", "nope", "--scopes", "directory:read"],
    ["client", "revoke", "00000000-0000-4000-8000-000000000000"],
])
def test_client_commands_refuse_unknown_objects(run, args):
    result = run(*args)
    assert result.exit_code != 0
    assert result.stdout == ""


@pytest.mark.parametrize("args", [
    ["client", "create", "--organization", "00000000-0000-4000-8000-000000000000",
     "--scopes", "directory:read"],
    ["client", "list", "--organization", "00000000-0000-4000-8000-000000000000"],
    ["client", "revoke", "00000000-0000-4000-8000-000000000000"],
])
def test_an_unknown_organization_or_client_is_a_one_line_error(run, args):
    """Exit 1 and the message alone: not a usage error (exit 2, "Usage: ..."), as if the
    command had been typed wrong, and for `client list` not `[]`, as if the organization had
    no clients."""
    result = run(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    what = "client" if args[1] == "revoke" else "organization"
    assert result.stderr.strip().splitlines() == [
        f"Error: no {what} 00000000-0000-4000-8000-000000000000"]


def test_operators_issuing_and_revoking_clients_and_adding_organizations_are_audited(app, run):
    """One event per change, in the command's transaction: no organization, client or token
    acted (reason `operator`), and no secret is in it."""
    organization = json.loads(run("org", "create", "--name", "Clinic",
                                  "--type", "hospital").stdout)
    created = json.loads(run("client", "create", "--organization", organization["id"],
                             "--scopes", "directory:read").stdout)
    assert run("client", "revoke", created["client_id"]).exit_code == 0
    assert run("client", "revoke", created["client_id"]).exit_code == 0  # changes nothing

    with app.app_context():
        events = [*audit_events(resource_type="organization", resource_id=organization["id"]),
                  *audit_events(resource_type="oauth_client", resource_id=created["client_id"])]
        assert [(e.resource_type, e.action, e.outcome, e.reason) for e in events] == [
            ("organization", "create", "permit", "operator"),
            ("oauth_client", "create", "permit", "operator"),
            ("oauth_client", "revoke", "permit", "operator"),
        ]
        for event in events:
            assert (event.organization_id, event.client_id, event.token_id) == (None, None, None)
            assert created["client_secret"] not in str(vars(event))


def test_demo_seed_audits_the_organizations_clients_and_secrets_it_issues(app, run):
    first = json.loads(run("demo", "seed").stdout)
    again = json.loads(run("demo", "seed").stdout)
    with app.app_context():
        for organization in first["organizations"]:
            assert [e.action for e in audit_events(
                resource_type="organization", resource_id=organization["id"])] == ["create"]
        for issued, rotated in zip(first["clients"], again["clients"], strict=True):
            events = audit_events(resource_type="oauth_client", resource_id=issued["client_id"])
            assert [(e.action, e.reason) for e in events] == [("create", "operator"),
                                                              ("update", "operator")]
            assert not any(secret in str(vars(e)) for e in events
                           for secret in (issued["client_secret"], rotated["client_secret"]))


@pytest.mark.parametrize("name", ["x" * 201, "   "])
def test_client_create_refuses_a_name_that_does_not_fit(run, name):
    organization = json.loads(run("org", "create", "--name", "Clinic", "--type",
                                  "hospital").stdout)
    result = run("client", "create", "--organization", organization["id"], "--scopes",
                 "directory:read", "--name", name)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""


@pytest.mark.no_db
def test_a_command_on_a_database_without_its_schema_says_to_migrate(tmp_path):
    from tests.conftest import make_app

    empty = make_app(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    result = empty.test_cli_runner().invoke(args=["client", "list"])
    assert result.exit_code == 3
    assert "run `flask --app app db upgrade`" in result.output
    assert "Traceback" not in result.output


@pytest.mark.no_db
def test_db_upgrade_prints_the_revision_reached_and_the_one_it_started_from(tmp_path):
    from tests.conftest import make_app

    fresh = make_app(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    [head] = fresh.extensions["migration_heads"]
    runner = fresh.test_cli_runner()

    first = runner.invoke(args=["db", "upgrade"])
    again = runner.invoke(args=["db", "upgrade"])

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert json.loads(first.stdout) == {"revision": head, "from": None}
    assert json.loads(again.stdout) == {"revision": head, "from": head}


@pytest.mark.no_db
@pytest.mark.parametrize("args", [["client", "list"], ["db", "upgrade"], ["audit", "verify"]])
def test_a_command_against_an_unreachable_database_says_so_in_one_line(args):
    """A message on standard error and exit 3, not the driver's traceback with the host and
    port it tried; and not 1, which `audit verify` gives a chain that fails, so that an alert
    on it does not report an outage as tampering."""
    from tests.conftest import make_app

    nowhere = make_app("postgresql://postgres@127.0.0.1:1/nowhere")
    result = nowhere.test_cli_runner().invoke(args=args)

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == \
        "Error: The database is unreachable: Connection refused"
    assert "127.0.0.1" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("scopes", ["", "directory:read everything:admin"])
def test_client_create_refuses_bad_scopes(run, scopes):
    organization = json.loads(run("org", "create", "--name", "Clinic", "--type",
                                  "hospital").stdout)
    result = run("client", "create", "--organization", organization["id"], "--scopes", scopes)
    assert result.exit_code != 0
    assert result.stdout == ""


def test_demo_seed_builds_the_network_and_reseeds_with_new_secrets(run, client):
    first = json.loads(run("demo", "seed").stdout)
    types = sorted(o["type"] for o in first["organizations"])
    assert types == sorted(["pediatric_primary_care", "child_welfare", "early_intervention",
                            "imh_provider", "imh_provider", "community_other"])
    assert len(first["clients"]) == 6
    auditor = next(c for c in first["clients"] if "audit:read" in c["scopes"])
    assert auditor["scopes"] == ["directory:read", "audit:read"]

    second = json.loads(run("demo", "seed").stdout)
    assert [o["id"] for o in second["organizations"]] == [o["id"] for o in first["organizations"]]
    assert [c["client_id"] for c in second["clients"]] == [c["client_id"] for c in first["clients"]]
    assert second["family"]["id"] == first["family"]["id"]  # kept, not recorded twice
    old, new = first["clients"][0], second["clients"][0]
    assert old["client_secret"] != new["client_secret"]
    form = {"grant_type": "client_credentials"}
    assert client.post("/oauth/token", data=form,
                       headers=basic(old["client_id"], old["client_secret"])).status_code == 401
    assert client.post("/oauth/token", data=form,
                       headers=basic(new["client_id"], new["client_secret"])).status_code == 200


@pytest.mark.no_db
def test_the_console_script_offers_the_operator_commands(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("imh-referral")
    environ = {**os.environ, "APP_ENV": "development",
               "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    result = subprocess.run([str(script), "--help"], env=environ, capture_output=True,  # noqa: S603
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for command in ("audit", "client", "db", "demo", "org", "openapi", "referrals"):
        assert f"  {command} " in result.stdout


def test_the_demo_family_is_shared_with_the_provider_by_consent(run, client):
    seeded = json.loads(run("demo", "seed").stdout)
    provider = next(c for c in seeded["clients"] if "Riverbend" in c["name"])
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=basic(provider["client_id"], provider["client_secret"]))
    bearer = {"Authorization": f"Bearer {token.json['access_token']}"}
    answer = client.get(f"/api/v1/families/{seeded['family']['id']}?purpose=referral",
                        headers=bearer)
    assert answer.status_code == 200
    assert answer.json["redacted"] == ["contact"]
    assert answer.json["child"]["given_name"] == "Mia"
    assert "preferred_language" not in answer.json
    # And the clinic's referral of the family, as Riverbend receives it.
    referral = client.get(f"/api/v1/referrals/{seeded['family']['referral_id']}",
                          headers=bearer)
    assert referral.status_code == 200
    assert referral.json["status"] == "requested"
    assert referral.json["family"]["child"]["given_name"] == "Mia"
    assert "reasons" not in referral.json
    again = json.loads(run("demo", "seed").stdout)
    assert again["family"]["referral_id"] == seeded["family"]["referral_id"]


@pytest.mark.parametrize("ended", ["expired", "revoked"])
def test_demo_seed_run_again_after_the_demo_consent_ended_shares_the_family_again(
        run, client, ended):
    """What seeding prints keeps working: a fresh consent, and, when the referral was held
    because its consent ended, a new referral."""
    first = json.loads(run("demo", "seed").stdout)
    family_id = first["family"]["id"]
    if ended == "expired":
        clock.freeze(clock.now() + timedelta(days=181))
    else:
        clinic = next(c for c in first["clients"] if "Pediatric" in c["name"])
        token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            headers=basic(clinic["client_id"], clinic["client_secret"]))
        headers = bearer(token.json["access_token"])
        [consent] = client.get(f"/api/v1/families/{family_id}/consents",
                               headers=headers).json["items"]
        assert client.post(f"/api/v1/consents/{consent['id']}/revoke", headers=headers,
                           json={"reason": "The family asked to stop."}).status_code == 200
    seeded = json.loads(run("demo", "seed").stdout)
    assert seeded["family"]["id"] == family_id

    provider = next(c for c in seeded["clients"] if "Riverbend" in c["name"])
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=basic(provider["client_id"], provider["client_secret"]))
    headers = bearer(token.json["access_token"])
    family = client.get(f"/api/v1/families/{family_id}?purpose=referral", headers=headers)
    assert family.status_code == 200, family.get_data(as_text=True)
    assert family.json["redacted"] == ["contact"]
    referral = client.get(f"/api/v1/referrals/{seeded['family']['referral_id']}",
                          headers=headers)
    assert referral.status_code == 200
    assert referral.json["status"] == "requested"
    # Held when the consent was revoked, the first referral stays as it was; after the
    # expiry, the first one is covered again and kept.
    kept = seeded["family"]["referral_id"] == first["family"]["referral_id"]
    assert kept == (ended == "expired")


@pytest.mark.no_db
def test_the_db_commands_offer_no_way_to_drop_or_skip_migrations(empty_database):
    """Retention is years and there is no delete path: `db downgrade` (whose revisions drop
    the audit trail, the consents and the families) and `db stamp` are not offered; the
    trail is as it was."""
    import flask_migrate

    from audit.models import AuditEvent
    from tests.conftest import make_app

    served = make_app(empty_database)
    try:
        with served.app_context():
            flask_migrate.upgrade()
        runner = served.test_cli_runner()
        assert runner.invoke(args=["demo", "seed"]).exit_code == 0
        assert runner.invoke(args=["audit", "verify"]).exit_code == 0  # seals (PostgreSQL)
        with served.app_context():
            events = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
            db.session.remove()
        assert events > 0
        for command in (["db", "downgrade", "base"], ["db", "stamp", "base"]):
            refused = runner.invoke(args=command)
            assert refused.exit_code == 2
            assert f"No such command '{command[1]}'" in refused.stderr
        with served.app_context():
            kept = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
            db.session.remove()
        assert kept == events
        assert runner.invoke(args=["audit", "verify"]).exit_code == 0
        upgraded = runner.invoke(args=["db", "upgrade"])
        assert upgraded.exit_code == 0
        assert json.loads(upgraded.stdout)["from"] == json.loads(upgraded.stdout)["revision"]
    finally:
        with served.app_context():
            db.engine.dispose()


def test_org_create_refuses_an_organization_already_in_the_directory(run):
    """A retried `org create` (the same name in any case, the same type) would add a second
    entry partners cannot tell from the first."""
    first = run("org", "create", "--name", "Kent County Early Head Start",
                "--type", "early_head_start")
    assert first.exit_code == 0, first.output
    again = run("org", "create", "--name", "KENT COUNTY Early Head Start",
                "--type", "early_head_start")
    assert again.exit_code == 1
    assert again.stdout == ""
    assert json.loads(first.stdout)["id"] in again.stderr
    other_type = run("org", "create", "--name", "Kent County Early Head Start",
                     "--type", "home_visiting")
    assert other_type.exit_code == 0, other_type.output


def _token(client, issued):
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(issued["client_id"], issued["client_secret"]))
    return bearer(answer.json["access_token"])


def test_demo_seed_rerun_after_riverbend_stopped_accepting_and_closed_the_referral(
        app, run, client):
    """Riverbend says it is not taking referrals (its own listing, README first calls) and
    rejects the demo referral. The next `demo seed` (every ./scripts/serve) still prints the
    network and fresh secrets, and says in one line why no new referral was sent."""
    first = run("demo", "seed")
    assert first.exit_code == 0, first.output
    seeded = json.loads(first.stdout)
    riverbend = next(c for c in seeded["clients"] if "Riverbend" in c["name"])
    as_riverbend = _token(client, riverbend)
    referral_id = seeded["family"]["referral_id"]
    read = client.get(f"/api/v1/referrals/{referral_id}", headers=as_riverbend)
    moved = client.post(f"/api/v1/referrals/{referral_id}/transitions",
                        headers={**as_riverbend, "If-Match": read.headers["ETag"]},
                        json={"status": "rejected", "reason": "at_capacity"})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    org_id = riverbend["organization_id"]
    patched = client.patch(f"/api/v1/organizations/{org_id}", headers=as_riverbend,
                           json={"accepting_referrals": False})
    assert patched.status_code == 200, patched.get_data(as_text=True)

    again = run("demo", "seed")

    assert "Traceback" not in again.output
    assert again.exit_code == 0, again.output
    reissued = json.loads(again.stdout)["clients"]
    assert reissued
    assert "demo seed: the demo referral was not sent again" in again.stderr
    # The refused send rolled back its savepoint only: every secret the run reissued is on
    # the trail.
    with app.app_context():
        rotated = audit_events(action="update", resource_type="oauth_client")
    assert sorted(e.resource_id for e in rotated) == sorted(c["client_id"] for c in reissued)


def test_demo_seed_rerun_after_the_mother_lost_legal_authority_and_consent_ended(run, client):
    """The clinic edits the demo family (its caregiver no longer holds legal authority) and
    the demo consent is revoked; the next `demo seed` says why it records no consent, and
    goes on."""
    seeded = json.loads(run("demo", "seed").stdout)
    clinic = next(c for c in seeded["clients"] if "Pediatric" in c["name"])
    as_clinic = _token(client, clinic)
    family_id = seeded["family"]["id"]
    family = client.get(f"/api/v1/families/{family_id}", headers=as_clinic)
    [mother] = family.json["caregivers"]
    [consent] = client.get(f"/api/v1/families/{family_id}/consents",
                           headers=as_clinic).json["items"]
    assert client.post(f"/api/v1/consents/{consent['id']}/revoke", headers=as_clinic,
                       json={"reason": "The family asked to stop."}).status_code == 200
    patched = client.patch(f"/api/v1/families/{family_id}", headers=as_clinic, json={
        "caregivers": [{"id": mother["id"], "given_name": mother["given_name"],
                        "family_name": mother["family_name"], "relationship": "mother",
                        "has_legal_authority": False}]})
    assert patched.status_code == 200, patched.get_data(as_text=True)

    again = run("demo", "seed")

    assert "Traceback" not in again.output
    assert again.exit_code == 0, again.output
    assert "no caregiver of the family has legal authority" in again.stderr


#: README (Operator commands): the `db` commands an operator gets.
README_DB_COMMANDS = {"upgrade", "current", "history", "heads", "show", "branches", "check",
                      "revision", "migrate", "edit", "merge"}


def test_the_db_group_offers_the_commands_the_readme_lists():
    assert set(db_cli.commands) == README_DB_COMMANDS, set(db_cli.commands) ^ README_DB_COMMANDS


@pytest.mark.parametrize("name", ["Kent Clinic\x1b[2J\x1b[H", "Kent Clinic\x07"])
def test_org_create_refuses_control_characters_in_the_name(run, name):
    """The directory shows the name to every partner: an escape sequence or a bell is
    refused, as the API refuses them in every text it takes."""
    result = run("org", "create", "--name", name, "--type", "hospital")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""


def test_client_create_refuses_control_characters_in_the_name(run):
    """`client list` shows the name to operators: loaded as the API loads a name."""
    organization = json.loads(run("org", "create", "--name", "Kent Clinic",
                                  "--type", "hospital").stdout)
    result = run("client", "create", "--organization", organization["id"],
                 "--scopes", "directory:read", "--name", "system\x1b[31m")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    kept = run("client", "create", "--organization", organization["id"],
               "--scopes", "directory:read", "--name", unicodedata.normalize("NFD", " Café "))
    assert json.loads(kept.stdout)["name"] == unicodedata.normalize("NFC", "Café")


def test_org_create_refuses_a_name_that_differs_only_in_its_unicode_form(run):
    """"Café" typed with a composed é and pasted with e and a combining accent look the same
    everywhere: one entry."""
    composed = unicodedata.normalize("NFC", "Café Enfance Clinic")
    first = run("org", "create", "--name", composed, "--type", "hospital")
    again = run("org", "create", "--name", unicodedata.normalize("NFD", composed),
                "--type", "hospital")
    assert again.exit_code == 1, again.output
    assert again.stdout == ""
    assert json.loads(first.stdout)["id"] in again.stderr


def test_the_db_commands_that_read_the_schema_print_json(app, run):
    """`db current` and `db heads` print JSON like every operator command, not Alembic's
    text ("0015 (head)")."""
    [head] = app.extensions["migration_heads"]
    current, heads = run("db", "current"), run("db", "heads")
    assert (current.exit_code, heads.exit_code) == (0, 0), current.output + heads.output
    assert json.loads(current.stdout) == {"revision": head, "head": True}
    assert json.loads(heads.stdout) == {"heads": [head]}


@pytest.mark.no_db
def test_db_current_says_a_database_behind_the_code_is_not_at_the_head(tmp_path):
    from tests.conftest import make_app

    older = make_app(f"sqlite:///{tmp_path / 'older.sqlite3'}")
    runner = older.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", "0006"]).exit_code == 0
    result = runner.invoke(args=["db", "current"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"revision": "0006", "head": False}
    refused = runner.invoke(args=["client", "list"])
    assert refused.exit_code == 3
    assert "run `flask --app app db upgrade`" in refused.stderr


def test_demo_seed_takes_a_demo_organization_an_operator_listed_in_another_case(run):
    """The directory lists one organization per name (case and Unicode form aside) and type:
    the demo seeds the one it finds, where it crashed on the unique index."""
    listed = run("org", "create", "--name", "early on washtenaw", "--type",
                 "early_intervention", "--county", "Washtenaw", "--language", "en")
    assert listed.exit_code == 0, listed.output

    seeded = run("demo", "seed")

    assert "Traceback" not in seeded.output
    assert seeded.exit_code == 0, seeded.output
    organizations = json.loads(seeded.stdout)["organizations"]
    assert json.loads(listed.stdout)["id"] in {o["id"] for o in organizations}


@pytest.mark.no_db
def test_a_command_the_trail_s_trigger_refuses_fails_as_a_fault_not_an_outage(empty_database):
    """The service's integrity triggers refuse a change to the trail with SQLSTATE 42501 on
    PostgreSQL (RAISE ... USING ERRCODE 'insufficient_privilege'), the code of a grant taken
    away: the commands read every 42501 as the database refusing them, and a command that
    met the append-only trigger exited 3, "refuses this command's writes", as an outage or a
    standby would, where the service answers the same refusal 500 (found by a review). A
    fault of the code, which no retry mends: the command's own failure (exit 1, the error
    itself), on both databases. Here a command of the test's rewrites an event."""
    import audit
    from core.cli import OperatorGroup
    from core.db import transaction
    from tests.conftest import served_app

    probe = OperatorGroup("probe")

    @probe.command("rewrite-trail")
    def rewrite_trail():
        with transaction():
            audit.record_operator("create", "organization", None)
        rewrite = ("UPDATE audit_pending SET reason = 'rewritten'"
                   if db.engine.dialect.name == "postgresql"
                   else "UPDATE audit_events SET reason = 'rewritten'")
        with transaction():  # the event is written when its transaction commits
            db.session.execute(sa.text(rewrite))

    with served_app(empty_database) as served:
        served.cli.add_command(probe)
        result = served.test_cli_runner().invoke(args=["probe", "rewrite-trail"])

    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, sa.exc.DBAPIError)
    assert "append-only" in str(result.exception.orig)
    assert "refuses this command's writes" not in result.output


@pytest.mark.no_db
@pytest.mark.parametrize(("orig", "says"), [
    (Exception("server closed the connection unexpectedly"),
     "Error: The database is unreachable: server closed the connection unexpectedly"),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
     "Error: The database is busy: others' work held what this command needed past the wait; "
     "nothing was done, retry it"),
])
def test_a_command_reads_a_database_error_as_the_service_does(empty_database, orig, says):
    """The commands and the service read a database error one way (core/dberrors.py). A
    connection the driver found lost midway, with no SQLSTATE, was a traceback and exit 1
    (`audit verify`'s tamper alarm) where the service answers 503 "unreachable"; a statement
    timeout (57014) "unreachable" where the service says the request met concurrent work."""
    from core.cli import OperatorGroup
    from tests.conftest import served_app

    probe = OperatorGroup("probe")

    @probe.command("fail")
    def fail():
        raise sa.exc.OperationalError("SELECT 1", {}, orig)

    with served_app(empty_database) as served:
        served.cli.add_command(probe)
        result = served.test_cli_runner().invoke(args=["probe", "fail"])

    assert result.exit_code == 3, (result.exit_code, result.output)
    assert result.stderr.strip() == says


@pytest.mark.parametrize("args", [
    ["org", "create", "--name", "Cl\udcednica", "--type", "hospital"],
    ["org", "create", "--name", "Clinic", "--type", "hospital", "--county", "x\udcff"],
    ["client", "create", "--organization", "{org}", "--scopes", "directory:read",
     "--name", "n\udcff"],
])
def test_an_argument_that_is_not_utf8_is_a_usage_error_not_a_traceback(run, args):
    """What Python makes of bytes typed in a Latin-1 terminal ("Cl\\xednica"): unpaired
    surrogates, which no database stores; they reached it and came back as a traceback."""
    organization = json.loads(run("org", "create", "--name", "Holder", "--type",
                                  "hospital").stdout)
    result = run(*[a.replace("{org}", organization["id"]) for a in args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize("look_alike", [
    "Riverbend\u00a0Infant Mental Health",   # a no-break space
    "\uff32iverbend Infant Mental Health",   # a full-width R
    "Riverbend Infant Mental Health\u200b",  # a zero-width space after it
    "Riverbend Infant  Mental Health",       # two spaces
    "Riverbend Infant Men\u00adtal Health",  # a soft hyphen
    "Riverbend Infant\u2060 Mental Health",  # a word joiner
])
def test_org_create_refuses_a_name_that_only_looks_different(run, look_alike):
    """Each was a second entry that renders as the first: partners could not tell which to
    refer to (a review)."""
    first = run("org", "create", "--name", "Riverbend Infant Mental Health",
                "--type", "imh_provider")
    assert first.exit_code == 0, first.output
    again = run("org", "create", "--name", look_alike, "--type", "imh_provider")
    assert again.exit_code == 1, again.output
    assert json.loads(first.stdout)["id"] in again.stderr


def test_the_demo_familys_events_name_the_command_not_a_client_of_the_clinic(app, run):
    """An auditor following the clinic saw a referral no client of the clinic's sent (a
    review): the demo's events name `demo-seed` as their client."""
    seeded = json.loads(run("demo", "seed").stdout)
    with app.app_context():
        events = audit_events(family_id=uuid.UUID(seeded["family"]["id"]))
    acts = {(e.action, e.resource_type) for e in events if e.outcome == "permit"}
    assert {("create", "family"), ("create", "consent"), ("create", "referral")} <= acts
    assert {e.client_id for e in events} == {"demo-seed"}
