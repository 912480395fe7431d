"""Secret references resolve at apply time; errors never carry values."""

from __future__ import annotations

import pytest

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.keystore import KeystoreBackend
from penguinctl.providers.secrets.resolve import absolute_ref, resolve
from penguinctl.spec.refs import SecretRef


@pytest.fixture
def keystore(tmp_path):
    return KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "master.key")


def test_env_file_keystore(tmp_path, keystore):
    assert resolve("env:TOKEN", secrets=None, env={"TOKEN": "s3cr3t"}).reveal() == "s3cr3t"
    (tmp_path / "tsig.key").write_text("a2V5bWF0ZXJpYWw=\n")
    value = resolve("file:tsig.key", secrets=None, base_dir=tmp_path)
    assert value.reveal() == "a2V5bWF0ZXJpYWw="
    assert "a2V5" not in repr(value) and "a2V5" not in str(value)
    keystore.put("providers/cf", {"value": "tok-123"})
    assert resolve("keystore:providers/cf", secrets=keystore).reveal() == "tok-123"
    ref = SecretRef.parse("file:tsig.key")
    assert absolute_ref(ref, tmp_path) == f"file:{(tmp_path / 'tsig.key').resolve()}"
    assert absolute_ref(SecretRef.parse("env:X"), tmp_path) == "env:X"


def test_missing_secrets_are_clear_errors(tmp_path, keystore):
    with pytest.raises(SecretError, match="environment variable NOPE is not set"):
        resolve("env:NOPE", secrets=None, env={})
    with pytest.raises(SecretError, match="cannot read"):
        resolve("file:/nonexistent/x", secrets=None)
    with pytest.raises(SecretError, match="not found in the keystore"):
        resolve("keystore:providers/none", secrets=keystore)
    with pytest.raises(SecretError, match="Vault"):
        resolve("vault:dns/tsig#secret", secrets=keystore)


def test_keystore_files_are_private_and_encrypted(tmp_path, keystore):
    keystore.put("mailboxes/john@acme.example", {"value": "correct horse battery"})
    (f,) = (tmp_path / "ks").rglob("*.secret")
    assert b"correct horse" not in f.read_bytes()
    assert f.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert keystore.list() == ["mailboxes/john@acme.example"]
    assert keystore.meta("mailboxes/john@acme.example").version == 1
    keystore.put("mailboxes/john@acme.example", {"value": "new"})
    assert keystore.meta("mailboxes/john@acme.example").version == 2
    other = KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "other.key")
    other.put("x/y", {"value": "1"})  # creates a different key
    with pytest.raises(SecretError, match="cannot be decrypted"):
        other.get("mailboxes/john@acme.example")
    keystore.delete("mailboxes/john@acme.example")
    assert keystore.get("mailboxes/john@acme.example") is None


def test_keystore_removes_temp_files_of_dead_writers(tmp_path, keystore):
    keystore.put("domains/a.example/dkim/pm202611", {"private_key": "x"})
    directory = tmp_path / "ks" / "domains" / "a.example" / "dkim"
    stale = directory / ".tmp-999999999-abc"  # no such pid
    stale.write_bytes(b"half a secret")
    keystore.put("domains/a.example/dkim/pm202612", {"private_key": "y"})
    assert not stale.exists()
    assert keystore.list() == ["domains/a.example/dkim/pm202611", "domains/a.example/dkim/pm202612"]
