"""`hcp sim gpu` options it cannot work with: refused with a usage error naming the option, never
a traceback, and nothing left listening."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from hcp.cli.main import app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sim", "gpu", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())  # unbox rich


@pytest.mark.parametrize(("prefix", "name"), [("", "-002"), ("a/b", "a/b-002")])
def test_a_prefix_that_makes_invalid_node_names_is_refused(prefix: str, name: str) -> None:
    code, output = run("--nodes", "2", "--prefix", prefix)
    assert code == 2
    assert f"Invalid value for --prefix: {prefix!r} makes node names like {name!r}" in output
    assert "a node name must be 1–128 of A-Z a-z 0-9 . _ -, starting with a letter" in output
    assert "Traceback" not in output


def test_a_prefix_too_long_for_the_node_names_is_refused() -> None:
    code, output = run("--prefix", "x" * 125)  # x...x-001 has 129 characters
    assert code == 2
    assert "Invalid value for --prefix" in output and "must be 1–128 of" in output


def test_a_port_in_use_is_refused_without_a_traceback() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, output = run("--nodes", "1", "--gpus-per-node", "1", "--port", str(port))
    assert code == 2
    assert f"Invalid value for --port: 127.0.0.1:{port} is already in use" in output
    assert "Traceback" not in output
