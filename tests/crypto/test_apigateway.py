"""Thingport's string-to-sign agrees with the vendor SDK's signer."""

from alibabacloud_apigateway_util.client import Client as GatewayUtil

from thingport.crypto import apigateway


class _Req:
    def __init__(self, headers: dict[str, str]) -> None:
        self.method, self.pathname, self.headers, self.query = "POST", "/awss/token/check", headers, {}


def test_signature_equals_the_sdk_signature() -> None:
    body = b'{"id":"1","params":{}}'
    headers = {"date": "Mon, 23 Nov 2026 03:00:00 GMT", "x-ca-nonce": "n-1", "x-ca-key": "k",
               "x-ca-signaturemethod": "HmacSHA256", "accept": "application/json",
               "content-type": "application/octet-stream", "content-md5": apigateway.content_md5(body),
               "host": "127.0.0.1:1", "user-agent": "x"}
    req = _Req(dict(headers))
    expected = GatewayUtil.get_signature(req, "secret")
    signed = apigateway.signed_header_names(req.headers["x-ca-signature-headers"])
    assert signed == ["x-ca-key", "x-ca-nonce", "x-ca-signaturemethod"]
    text = apigateway.string_to_sign("POST", headers, signed, "/awss/token/check")
    assert apigateway.signature("secret", text) == expected
    assert apigateway.content_md5(body) == GatewayUtil.get_content_md5(body.decode())


def test_colon_separated_signature_headers_are_read() -> None:
    assert apigateway.signed_header_names("X-Ca-Nonce:x-ca-key") == ["x-ca-key", "x-ca-nonce"]


def test_query_is_sorted_into_the_path() -> None:
    assert apigateway.path_and_query("/p", [("b", "2"), ("a", ""), ("c", "3")]) == "/p?a&b=2&c=3"
