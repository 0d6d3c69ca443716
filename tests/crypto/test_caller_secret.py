import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.certs import rsa_keypair
from thingport.crypto import caller_secret


def test_roundtrip() -> None:
    priv, pub = rsa_keypair()
    enc, session = caller_secret.encrypt(pub, "Z5YtZaQpK5IWocakV7zQ")
    assert caller_secret.decrypt(priv, enc, session) == "Z5YtZaQpK5IWocakV7zQ"


def test_scheme_is_the_documented_one_independently_decrypted() -> None:
    """Decrypt by hand with the primitives docs/enos.md names: RSA PKCS#1 v1.5, AES-128-ECB, PKCS#7."""
    priv_pem, pub = rsa_keypair()
    enc, session = caller_secret.encrypt(pub, "secret-123")
    priv = serialization.load_pem_private_key(priv_pem.encode(), password=None)
    assert isinstance(priv, rsa.RSAPrivateKey)
    key = priv.decrypt(base64.b64decode(session), padding.PKCS1v15())
    assert len(key) == 16
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    raw = dec.update(base64.b64decode(enc)) + dec.finalize()
    assert raw[: -raw[-1]] == b"secret-123" and set(raw[-raw[-1]:]) == {raw[-1]}


def test_fresh_session_key_each_time() -> None:
    _, pub = rsa_keypair()
    assert caller_secret.encrypt(pub, "s")[1] != caller_secret.encrypt(pub, "s")[1]


def test_bad_public_keys_refused() -> None:
    with pytest.raises(caller_secret.CallerKeyError, match="PEM"):
        caller_secret.load_public_key("not a key")
    _, small = rsa_keypair(1024)
    with pytest.raises(caller_secret.CallerKeyError, match="2048"):
        caller_secret.load_public_key(small)
