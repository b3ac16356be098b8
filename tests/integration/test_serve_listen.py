"""`hcp up`/`hcp api` claim their listening sockets before anything else starts."""

from __future__ import annotations

import socket

import pytest
import typer

from hcp.cli.serve import _listen
from hcp.config import Settings
from tests.ports import free_port


def test_a_named_address_gets_one_listening_socket() -> None:
    port = free_port()
    listeners = _listen(Settings(host="127.0.0.1", port=port))
    try:
        assert [s.getsockname() for s in listeners] == [("127.0.0.1", port)]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # accepted into the queue before any server runs
    finally:
        for s in listeners:
            s.close()


def test_an_empty_host_listens_on_every_interface_and_ipv6_stays_ipv6_only() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6")
    port = free_port()
    listeners = _listen(Settings(host="", port=port))
    try:
        families = {s.family for s in listeners}
        assert socket.AF_INET in families
        for s in listeners:
            if s.family == socket.AF_INET6:
                assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    finally:
        for s in listeners:
            s.close()


def test_a_taken_port_stops_with_a_message_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(typer.Exit) as stopped:
            _listen(Settings(host="127.0.0.1", port=port))
    assert stopped.value.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "named"), [("", "port {port} of every interface"), ("::1", "[::1]:{port}")]
)
def test_a_taken_port_is_named_whatever_the_host(
    capsys: pytest.CaptureFixture[str], host: str, named: str
) -> None:
    """With HCP_HOST empty the message read 'cannot listen on :PORT'."""
    from hcp.cli.serve import _cannot_listen

    port = 18_080
    _cannot_listen(Settings(host=host, port=port), OSError(98, "Address already in use"))
    err = capsys.readouterr().err
    assert f"cannot listen on {named.format(port=port)}: Address already in use" in err
