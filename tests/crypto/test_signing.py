import hashlib

from thingport.crypto import signing

# The worked example of EnOS "Invoke API with access token": these are the inputs printed on the
# page. The digest printed there (59828328…fc981) cannot be reproduced from them with any
# whitespace or ordering variant (docs/enos.md), so the test pins the documented construction:
# accessToken + sorted(k+v) + body + timestamp + appSecret, SHA-256, lower-case hex.
DOC_BODY = '{\n  "count": 20,\n  "page": 1,\n  "desc": "description"\n}'
DOC_QUERY = [("k3", "v3"), ("k1", "v1"), ("k2", "v2")]


def test_apim_signature_follows_the_documented_steps() -> None:
    step4 = "xxxxaaaxxxx" + "k1v1k2v2k3v3" + DOC_BODY + "1572574909697" + "xxxappSecretxxx"
    expected = hashlib.sha256(step4.encode("utf-8")).hexdigest()
    got = signing.apim_signature("xxxxaaaxxxx", DOC_QUERY, DOC_BODY, "1572574909697", "xxxappSecretxxx")
    assert got == expected == "ad6dc6fc97f4290f3724e94eab38168d8613c41c3a4569b4b8b0efbce96a816c"


def test_token_encryption() -> None:
    assert signing.apim_token_encryption("ak", "1572574909697", "sk") == hashlib.sha256(
        b"ak1572574909697sk").hexdigest()


def test_access_key_signature_is_upper_sha1_like_the_python_sdk() -> None:
    params = [("requestTimestamp", "1"), ("orgId", "o1"), ("action", "get")]
    got = signing.access_key_signature("AK", params, "", "SK")
    assert got == hashlib.sha1(b"AKactiongetorgIdo1requestTimestamp1SK").hexdigest().upper()


def test_equal_is_case_insensitive_and_exact() -> None:
    assert signing.equal("ABCDEF", "abcdef")
    assert not signing.equal("abcdef", "abcdee")
    assert not signing.equal("abc", "abcd")


def test_python_sdk_sign_matches() -> None:
    from enosapi.util.Sign import Sign

    params = {"orgId": "o1", "requestTimestamp": "123", "action": "create"}
    body = '{"a": 1}'
    assert Sign.sign("AK", "SK", params, body) == signing.access_key_signature("AK", params.items(), body, "SK")
