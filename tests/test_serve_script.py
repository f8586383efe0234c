"""`./scripts/serve` refuses a PORT that is no port before it installs or seeds anything: it
said such a port was "in use" (a review)."""

import subprocess
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[1] / "scripts" / "serve"


@pytest.mark.no_db
@pytest.mark.parametrize("port", ["abc", "99999", "0", "80 ", "-1"])
def test_a_port_that_is_no_port_is_said_to_be_one(tmp_path, port):
    result = subprocess.run([str(SERVE)], env={"PATH": "/usr/bin:/bin", "PORT": port},  # noqa: S603
                            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr == f"serve: PORT must be a port number from 1 to 65535, got '{port}'\n"
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
