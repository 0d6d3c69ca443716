from pathlib import Path

import pytest

from thingport.crypto.keyring import Keyring, KeyringError


def test_roundtrip_and_context_binding() -> None:
    ring = Keyring.generate()
    token = ring.encrypt("s3cret", context="device:a")
    assert "s3cret" not in token
    assert ring.decrypt(token, context="device:a") == "s3cret"
    with pytest.raises(KeyringError):
        ring.decrypt(token, context="device:b")  # a ciphertext moved to another row is refused


def test_same_plaintext_encrypts_differently() -> None:
    ring = Keyring.generate()
    assert ring.encrypt("x") != ring.encrypt("x")


def test_rotation_keeps_old_ciphertexts_readable() -> None:
    ring = Keyring.generate()
    old = ring.encrypt("s")
    new_ring = ring.rotated()
    assert new_ring.primary != ring.primary
    assert new_ring.decrypt(old) == "s"
    assert new_ring.key_id_of(new_ring.encrypt("s")) == new_ring.primary
    pruned = new_ring.without(ring.primary)
    with pytest.raises(KeyringError):
        pruned.decrypt(old)


def test_save_load_and_permissions(tmp_path: Path) -> None:
    ring = Keyring.generate()
    path = tmp_path / "k" / "master.key"
    ring.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyring.load(path).decrypt(ring.encrypt("v")) == "v"


def test_damaged_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("{not json")
    with pytest.raises(KeyringError, match="cannot read"):
        Keyring.load(path)
    path.write_text('{"primary": "x", "keys": {"y": "AAAA"}}')
    with pytest.raises(KeyringError, match="damaged"):
        Keyring.load(path)


def test_tampered_ciphertext_refused() -> None:
    ring = Keyring.generate()
    token = ring.encrypt("value")
    head, body = token.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(KeyringError):
        ring.decrypt(f"{head}:{flipped}")
