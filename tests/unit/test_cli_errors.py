"""The command-line tools answer bad input and an unusable database with one `hcp:` line (or
a usage error naming the option), never a traceback, and create nothing on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcp.cli.main import app


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


def test_a_database_not_created_yet_is_named_and_not_created(tmp_path: Path) -> None:
    var = tmp_path / "var"
    code, output = run("keys", "list", env={"HCP_VAR_DIR": str(var), "HCP_DATABASE_URL": ""})
    assert code == 1
    assert f"hcp: no database at {var / 'hcp.db'}: run `hcp db upgrade`" in output
    assert not (var / "hcp.db").exists()
    deep = tmp_path / "no" / "such" / "folder" / "hcp.db"
    code, output = run("keys", "list", env={"HCP_DATABASE_URL": f"sqlite:///{deep}"})
    assert code == 1 and f"no database at {deep}" in output
    assert not (tmp_path / "no").exists()  # its folder was made on the way, before


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/x", "Connection refused"),
        ("bogus://x", "Can't load plugin"),
        ("notaurl", "Could not parse"),
        ("mysql://x/y", "its driver is not installed"),
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line(url: str, words: str) -> None:
    for command in (
        ["keys", "list"],
        ["db", "upgrade"],
        ["billing", "usage", "--month", "2025-01"],
    ):
        code, output = run(*command, env={"HCP_DATABASE_URL": url})
        assert code == 1, command
        assert output.startswith("hcp: database ") and words in output, (command, output)


def test_db_upgrade_names_unknown_revisions_and_never_goes_back(tmp_path: Path) -> None:
    env = {"HCP_VAR_DIR": str(tmp_path), "HCP_DATABASE_URL": ""}
    code, output = run("db", "upgrade", "bogus", env=env)
    assert code == 1 and "no migration 'bogus'" in output
    code, output = run("db", "upgrade", "0005", env=env)
    assert (code, output.split(":")[0]) == (0, "database at 0005")
    code, output = run("db", "upgrade", env=env)
    assert code == 0 and output.startswith("database at 0")
    head = output.split()[2].rstrip(":")
    code, output = run("db", "upgrade", "0005", env=env)
    assert code == 1 and f"is at {head}, past 0005: it never goes back" in output


@pytest.mark.parametrize("days", ["nan", "inf", "1e12", "0", "-1"])
def test_a_key_lifetime_must_be_a_real_number_of_days(days: str) -> None:
    code, output = run("keys", "create", "--name", "k", "--expires-days", days)
    assert code == 2 and "Invalid value for '--expires-days'" in output


@pytest.mark.parametrize("hours", ["nan", "inf", "0"])
def test_a_workload_needs_a_real_number_of_hours(hours: str) -> None:
    code, output = run("workloads", "submit", "ai_training", "--hours", hours)
    assert code == 2 and "Invalid value for '--hours'" in output


@pytest.mark.parametrize("workload_id", ["../keys/key-0d5105dace8a", "a?b=c", "", "x/y"])
@pytest.mark.parametrize("command", ["show", "cancel"])
def test_a_workload_id_that_is_a_path_is_refused_before_anything_is_sent(
    command: str, workload_id: str
) -> None:
    """`cancel ../keys/KEY --as admin` revoked that API key: the id went into the URL as is."""
    code, output = run("workloads", command, workload_id, "--url", "http://127.0.0.1:1")
    assert code == 2 and "is not a workload id" in output


def test_as_names_its_choices(tmp_path: Path) -> None:
    (tmp_path / "demo-keys.json").write_text(json.dumps({"customer": "c", "admin": "a"}))
    code, output = run("workloads", "list", "--as", "bogus", env={"HCP_VAR_DIR": str(tmp_path)})
    assert code == 2 and "must be one of customer, admin" in output


def test_usage_of_an_unknown_customer_is_an_error(tmp_path: Path) -> None:
    env = {"HCP_VAR_DIR": str(tmp_path), "HCP_DATABASE_URL": ""}
    assert run("db", "upgrade", env=env)[0] == 0
    code, output = run("billing", "usage", "--month", "2025-01", "--customer", "nosuch", env=env)
    assert code == 1 and "unknown customer 'nosuch'" in output


def test_the_simulated_market_is_the_same_from_the_same_seed_and_start() -> None:
    args = ("sim", "market", "--count", "2", "--speed", "100000", "--start", "2025-01-01")
    first, second = run(*args), run(*args)
    assert first == second and first[0] == 0
    assert '"at": "2025-01-01T00:00:00+00:00"' in first[1]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b'port = "abc"\n', ":1: port: Input should be a valid integer"),
        (b"port = \n", ":1 column 8: invalid TOML"),
        (b"\xc0\xff\x00binary", ":1: not UTF-8 text"),
    ],
)
def test_a_bad_config_file_is_named_with_its_line(tmp_path: Path, text: bytes, words: str) -> None:
    config = tmp_path / "hcp.toml"
    config.write_bytes(text)
    code, output = run("keys", "list", env={"HCP_CONFIG": str(config)})
    assert code == 2
    assert output.startswith(f"hcp: bad configuration: {config}") and words in output


@pytest.mark.parametrize(
    ("host", "url"),
    [("", "http://127.0.0.1:1"), ("::1", "http://[::1]:1"), ("127.0.0.1", "http://127.0.0.1:1")],
)
def test_the_api_url_from_the_bind_address_is_one_a_client_can_reach(host: str, url: str) -> None:
    """HCP_HOST empty (all interfaces) made http://:PORT, and an IPv6 address a URL whose port
    httpx could not parse (a traceback): the client calls loopback, and an IPv6 host in []."""
    env = {"HCP_HOST": host, "HCP_PORT": "1", "HCP_API_KEY": "k", "HCP_URL": ""}
    code, output = run("workloads", "list", env=env)
    assert code == 1 and output.startswith(f"hcp: cannot reach {url}: "), output


@pytest.mark.parametrize("url", ["http://127.0.0.1:notaport", "127.0.0.1:8080"])
def test_a_bad_api_url_is_one_line(url: str) -> None:
    code, output = run("workloads", "list", "--url", url, "--key", "k")
    assert code == 1 and output.startswith(f"hcp: bad API URL {url}: "), output


def test_a_placeholder_secret_outside_development_is_named_plainly() -> None:
    code, output = run("keys", "list", env={"HCP_ENV": "production", "HCP_SECRET_KEY": "dev"})
    assert code == 2
    assert output.startswith("hcp: bad configuration: HCP_SECRET_KEY is a placeholder"), output


def test_hcp_up_announces_a_url_a_browser_can_open(capsys: pytest.CaptureFixture[str]) -> None:
    """With HCP_HOST empty it printed http://:PORT for the API, its docs and the login."""
    from hcp.cli.serve import _announce
    from hcp.config import Settings

    _announce(Settings(host="", port=18080), None)
    assert capsys.readouterr().out.startswith("HCP development on http://127.0.0.1:18080  (API")


def test_a_controller_points_its_logins_at_an_api_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`hcp controller` serves no pages: it printed a login URL where nothing listens."""
    from hcp.cli.serve import _announce
    from hcp.config import Settings

    keys = {
        "admin": "hcp_a", "customer": "hcp_c", "customer_id": "cust-001",
        "admin_email": "admin@hcp.local", "admin_password": "pw-admin",
        "customer_email": "customer@hcp.local", "customer_password": "pw-customer",
    }  # fmt: skip
    _announce(Settings(port=18080), keys, serving=False)
    out = capsys.readouterr().out
    assert "http://" not in out and "Dashboard /login of `hcp api` on this database:" in out
    _announce(Settings(port=18080), keys)
    assert "Dashboard http://127.0.0.1:18080/login:" in capsys.readouterr().out


def test_a_bad_bus_url_is_named_plainly() -> None:
    code, output = run("keys", "list", env={"HCP_BUS_URL": "kafka://127.0.0.1:9092"})
    assert code == 2
    assert output.startswith("hcp: bad configuration: bus_url: HCP_BUS_URL 'kafka://"), output


def test_a_bus_that_does_not_answer_stops_a_controller_with_one_line(tmp_path: Path) -> None:
    """Checked as the controller starts, before it stands by: not when it takes the lead."""
    env = {
        "HCP_VAR_DIR": str(tmp_path),
        "HCP_DATABASE_URL": "",
        "HCP_BUS_URL": "nats://hcp:hunter2@127.0.0.1:1",
    }
    code, output = run("controller", "--asics", "1", "--gpus", "1", env=env)
    assert code == 1
    assert output.startswith("hcp: the event bus at nats://hcp:***@127.0.0.1:1 does not answer")
    assert output.endswith("(check HCP_BUS_URL)") and "hunter2" not in output
