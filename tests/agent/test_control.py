"""The control endpoint over real loopback HTTP: token, Host check, hand-off."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent.control import ANOMALIES_PATH, STATUS_PATH, ControlApi, ControlServer, call


class Api:
    def __init__(self) -> None:
        self.handed: list[list[str]] = []

    def status(self) -> dict[str, Any]:
        return {"state": "fine"}

    def hand_off(self, ids: list[str]) -> dict[str, int]:
        self.handed.append(ids)
        return {"accepted": len(ids), "dropped": 0, "duplicates": 0}


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[ControlServer, Api]]:
    # One server for the module: stopping one waits out its one-second shutdown poll.
    api = Api()
    with ControlServer(ControlApi(api.status, api.hand_off), token="s3cret") as srv:
        yield srv, api


@pytest.fixture
def server(shared: tuple[ControlServer, Api]) -> tuple[ControlServer, Api]:
    shared[1].handed.clear()
    return shared


def raw(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_status_with_the_token(server: tuple[ControlServer, Api]) -> None:
    srv, _ = server
    assert call(srv.port, "s3cret", STATUS_PATH) == (200, {"state": "fine"})


def test_wrong_or_missing_token_is_refused(server: tuple[ControlServer, Api]) -> None:
    srv, api = server
    code, body = call(srv.port, "nope", ANOMALIES_PATH, {"ids": ["a1"]})
    assert code == 401 and "token" in body["error"]
    assert raw(srv.port, "GET", STATUS_PATH, {}) == 401
    assert api.handed == []


def test_foreign_host_header_is_refused(server: tuple[ControlServer, Api]) -> None:
    srv, _ = server
    headers = {"Host": f"evil.example:{srv.port}", "Authorization": "Bearer s3cret"}
    assert raw(srv.port, "GET", STATUS_PATH, headers) == 403


def test_hand_off_passes_ids(server: tuple[ControlServer, Api]) -> None:
    srv, api = server
    code, body = call(srv.port, "s3cret", ANOMALIES_PATH, {"ids": ["a1", "a2"]})
    assert code == 202 and body["accepted"] == 2
    assert api.handed == [["a1", "a2"]]


@pytest.mark.parametrize(
    "payload",
    [b"not json", json.dumps({"ids": "a1"}).encode(), json.dumps({"ids": [""]}).encode()],
)
def test_bad_bodies_are_400(server: tuple[ControlServer, Api], payload: bytes) -> None:
    srv, api = server
    headers = {
        "Host": f"127.0.0.1:{srv.port}",
        "Authorization": "Bearer s3cret",
        "Content-Type": "application/json",
    }
    assert raw(srv.port, "POST", ANOMALIES_PATH, headers, payload) == 400
    assert api.handed == []


def test_unknown_path_is_404(server: tuple[ControlServer, Api]) -> None:
    srv, _ = server
    assert call(srv.port, "s3cret", "/v1/nothing")[0] == 404
