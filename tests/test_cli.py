"""Operator commands print JSON, fail with a message and a non-zero exit, and change data."""

import json

import pytest

from tests.conftest import basic


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


@pytest.mark.parametrize("args", [
    ["--name", "X", "--type", "school"],
    ["--name", "   ", "--type", "hospital"],
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
    assert result.exit_code == 1
    assert "flask db upgrade" in result.output
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
@pytest.mark.parametrize("args", [["client", "list"], ["db", "upgrade"]])
def test_a_command_against_an_unreachable_database_says_so_in_one_line(args):
    """A message on standard error and exit 1, not the driver's traceback with the host and
    port it tried."""
    from tests.conftest import make_app

    nowhere = make_app("postgresql://postgres@127.0.0.1:1/nowhere")
    result = nowhere.test_cli_runner().invoke(args=args)

    assert result.exit_code == 1
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
