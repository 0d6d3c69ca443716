"""Console session cookies and CSRF tokens."""

from thingport.dialects.console.session import LIFETIME_MS, Sessions


def test_a_cookie_stands_for_its_session_until_it_expires() -> None:
    s = Sessions("token-a")
    cookie, session = s.issue(now=1_000)
    found = s.check(cookie, now=1_000 + LIFETIME_MS - 1)
    assert found == session and session.csrf
    assert s.check(cookie, now=1_000 + LIFETIME_MS) is None
    assert Sessions("token-a").check(cookie, now=2_000) == session  # a restart: same token, same key
    assert Sessions("token-b").check(cookie, now=2_000) is None  # a new operator token ends every session


def test_forged_and_malformed_cookies_are_refused() -> None:
    s = Sessions("token-a")
    cookie, _ = s.issue(now=0)
    payload, mac = cookie.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    for bad in (None, "", "x", ".", f"{payload}.", f"{forged_payload}.{mac}", f"{payload}.{mac[:-1]}",
                "a" * 600, cookie + "x"):
        assert s.check(bad, now=1) is None, bad
    # a well-signed payload that is not a session
    import base64
    import hashlib
    import hmac

    key = hmac.new(b"token-a", b"thingport console session v1", hashlib.sha256).digest()
    for body in (b"[]", b'{"sid": 1, "exp": 5}', b'{"sid": "x"}', b"not json"):
        p = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        m = base64.urlsafe_b64encode(hmac.new(key, p.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
        assert s.check(f"{p}.{m}", now=1) is None, body


def test_the_csrf_token_belongs_to_one_session() -> None:
    s = Sessions("token-a")
    _, one = s.issue()
    _, two = s.issue()
    assert one.csrf != two.csrf
    assert Sessions.csrf_ok(one, one.csrf)
    assert not Sessions.csrf_ok(one, two.csrf)
    assert not Sessions.csrf_ok(one, None)
    assert not Sessions.csrf_ok(one, "")
