"""Malformed OceanConnect requests get the documented error codes, never a 500 (issue 11)."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.support.oc_client import OcClient, oc_error
from thingport.dialects.oceanconnect import render

SEC = "/iocm/app/sec/v1.1.0"
DM = "/iocm/app/dm/v1.4.0/devices"
DEEP = b'{"accessToken": ' + b"[" * 1000 + b"]" * 1000 + b"}"


async def test_unauthenticated_routes_refuse_deep_nesting(http: httpx.AsyncClient,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """logout and refreshToken need no token: a 2 KB body raised RecursionError for anyone."""
    with caplog.at_level(logging.WARNING):
        for route in ("logout", "refreshToken"):
            oc_error(await http.post(f"{SEC}/{route}", content=DEEP), 400, "100007", "body: arrays and objects")
    assert not caplog.records


async def test_authenticated_routes_check_the_token_before_the_body(http: httpx.AsyncClient) -> None:
    r = await http.post("/iocm/app/reg/v1.1.0/deviceCredentials", content=DEEP)
    oc_error(r, 401, "100025")


@pytest.mark.parametrize("page", ["¹", "²", "٣", "１", "1_0", " 1", "9" * 30, "1000001"])
async def test_page_numbers_are_ascii_digits_in_range(oc: OcClient, page: str) -> None:
    oc_error(await oc.call("GET", DM, params={"pageNo": page}), 400, "100405", "pageNo: must be an integer")
    oc_error(await oc.call("GET", "/iocm/app/sub/v1.2.0/subscriptions", params={"pageNo": page}), 400, "50400",
             "pageNo")


async def test_node_ids_ending_in_a_newline_are_refused(oc: OcClient) -> None:
    r = await oc.call("POST", "/iocm/app/reg/v1.1.0/deviceCredentials", {"nodeId": "node0001\n"})
    oc_error(r, 400, "50400", "nodeId")


async def test_nul_in_a_query_value_or_a_path_is_refused(oc: OcClient) -> None:
    oc_error(await oc.call("GET", DM, params={"pageNo": "0", "name": "\u0000"}), 400, "100405",
             "name: contains a NUL character")
    oc_error(await oc.call("GET", f"{DM}/ab%00c"), 400, "100405", "device_id: contains a NUL character")
    oc_error(await oc.call("POST", f"{SEC}/login", headers={"Content-Type": "application/x-www-form-urlencoded"}),
             400, "102202")
    r = await oc.http.post(f"{SEC}/login", content=b"appId=a%00&secret=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    oc_error(r, 400, "50400", "appId: contains a NUL character")


@pytest.mark.parametrize("value", ["٠0151212T121212Z", "2015121²T121212Z", "20151212T121212Z\n", "1e400"])
def test_times_are_ascii_digits(value: str) -> None:
    """``strptime``'s ``%Y`` reads Arabic-Indic digits; the fuzzer found ``٠015…`` taken as a year."""
    with pytest.raises(ValueError, match="startTime: must be"):
        render.parse_time(value, "startTime")
    assert render.parse_time("20151212T121212Z", "startTime") == 1449922332000
