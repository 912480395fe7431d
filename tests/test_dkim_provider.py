"""The ``dkim`` provider against a small in-memory secrets backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from penguinctl.dkim import generate_rsa, key_bits, public_b64_from_private
from penguinctl.errors import PenguinError, ProviderError, SecretError
from penguinctl.plan.changes import Action, Change
from penguinctl.providers.dkim import CREATE_CHUNK, DkimProvider, secret_path
from penguinctl.providers.secrets.base import SecretMeta, SecretsBackend, SecretValue
from penguinctl.resources import ResourceKey

BITS = 1024  # the provider does not care; small keys keep the tests fast


class MemorySecrets(SecretsBackend):
    """Secrets in a dict; counts writes and can be told to fail them."""

    name = "memory"

    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.versions: dict[str, int] = {}
        self.puts = 0
        self.fail_put = False
        self._lock = threading.Lock()

    def get(self, path: str) -> dict[str, SecretValue] | None:
        with self._lock:
            fields = self.data.get(path)
            return None if fields is None else {k: SecretValue(v) for k, v in fields.items()}

    def put(self, path: str, fields: dict[str, str]) -> SecretMeta:
        if self.fail_put:
            raise SecretError(f"cannot write secret {path}", hint="backend is read-only")
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self.puts += 1
            self.data[path] = dict(fields)
            self.versions[path] = self.versions.get(path, 0) + 1
            return SecretMeta(path, self.versions[path], now, now)

    def delete(self, path: str) -> None:
        with self._lock:
            self.data.pop(path, None)
            self.versions.pop(path, None)

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(p for p in self.data if p.startswith(prefix))


def _data(domain: str, selector: str = "pm202611", **over) -> dict:
    return {"domain": domain, "selector": selector, "algorithm": "rsa", "bits": BITS, **over}


def _key(domain: str, selector: str = "pm202611") -> ResourceKey:
    return ResourceKey("dkim", "acme", f"{domain}/{selector}")


def _create(domain: str, selector: str = "pm202611", **over) -> Change:
    return Change(
        Action.CREATE, _key(domain, selector), "dkim", None, _data(domain, selector, **over)
    )


@pytest.fixture
def secrets() -> MemorySecrets:
    return MemorySecrets()


@pytest.fixture
def provider(secrets) -> DkimProvider:
    return DkimProvider("dkim", secrets, workers=2)


def _all_private(secrets: MemorySecrets) -> list[str]:
    return [f["private_key"] for f in secrets.data.values()]


def _assert_no_private_material(text: str, secrets: MemorySecrets) -> None:
    assert "PRIVATE KEY" not in text
    for pem in _all_private(secrets):
        for line in pem.splitlines()[1:-1]:
            assert line not in text


def test_create_generates_stores_and_returns_the_public_key(provider, secrets):
    change = _create("acme.example")
    (result,) = provider.apply_batch([change])
    path = secret_path("acme", "acme.example", "pm202611")
    assert path == "tenants/acme/domains/acme.example/dkim/pm202611"
    stored = secrets.data[path]
    assert set(stored) == {"private_key", "public_key"}
    assert stored["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert key_bits(stored["private_key"]) == BITS
    assert result.change is change
    since = result.data.pop("phase_since")
    assert datetime.fromisoformat(since).tzinfo is not None
    assert result.data == {**change.after, "phase": "active", "public_key": stored["public_key"]}
    assert public_b64_from_private(stored["private_key"]) == result.data["public_key"]
    _assert_no_private_material(repr(result) + str(result.data), secrets)


def test_many_creates_chunked_and_generated_in_parallel(provider, secrets):
    changes = [_create(f"client{i}.example") for i in range(5)]
    results = provider.apply_batch(changes)
    assert [r.change for r in results] == changes
    publics = [r.data["public_key"] for r in results]
    assert len(set(publics)) == 5
    for change, public in zip(changes, publics, strict=True):
        stored = secrets.data[secret_path("acme", change.after["domain"], "pm202611")]
        assert stored["public_key"] == public
        assert public_b64_from_private(stored["private_key"]) == public
    assert secrets.puts == 5


def test_batch_key_chunks_creates(provider):
    creates = [_create(f"c{i}.example") for i in range(CREATE_CHUNK * 2 + 1)]
    keys = [provider.batch_key(c) for c in creates]
    assert len(set(keys)) == 3
    assert keys.count(keys[0]) == CREATE_CHUNK
    delete = Change(Action.DELETE, _key("x.example"), "dkim", _data("x.example"), None)
    assert provider.batch_key(delete) not in set(keys)


def test_create_adopts_an_existing_secret(provider, secrets):
    pair = generate_rsa(BITS)
    path = secret_path("acme", "acme.example", "pm202611")
    secrets.put(path, {"private_key": pair.private_pem, "public_key": pair.public_b64})
    (result,) = provider.apply_batch([_create("acme.example")])
    assert result.data["public_key"] == pair.public_b64
    assert secrets.data[path]["private_key"] == pair.private_pem  # not replaced
    assert secrets.puts == 1


def test_adoption_repairs_a_missing_public_key_field(provider, secrets):
    pair = generate_rsa(BITS)
    path = secret_path("acme", "acme.example", "pm202611")
    secrets.put(path, {"private_key": pair.private_pem})
    (result,) = provider.apply_batch([_create("acme.example")])
    assert result.data["public_key"] == pair.public_b64
    assert secrets.data[path] == {"private_key": pair.private_pem, "public_key": pair.public_b64}


def test_rerun_after_crash_converges(secrets):
    changes = [_create(f"client{i}.example") for i in range(4)]
    first = DkimProvider("dkim", secrets).apply_batch(changes)  # state never recorded
    again = DkimProvider("dkim", secrets).apply_batch(changes)
    assert [r.data["public_key"] for r in again] == [r.data["public_key"] for r in first]
    assert secrets.puts == 4


def test_adopting_a_broken_or_different_key_is_refused(provider, secrets):
    path = secret_path("acme", "acme.example", "pm202611")
    secrets.put(path, {"private_key": "-----BEGIN PRIVATE KEY-----\nSECRETJUNK\n-----END"})
    with pytest.raises(ProviderError) as info:
        provider.apply_batch([_create("acme.example")])
    assert path in str(info.value) and "SECRETJUNK" not in str(info.value)
    assert info.value.__context__ is None or "SECRETJUNK" not in str(info.value.__context__)

    secrets.put(path, {"public_key": "x"})
    with pytest.raises(ProviderError, match="no private_key"):
        provider.apply_batch([_create("acme.example")])

    big = generate_rsa(2048)
    secrets.put(path, {"private_key": big.private_pem, "public_key": big.public_b64})
    with pytest.raises(ProviderError, match="2048-bit key but the spec asks for 1024") as info:
        provider.apply_batch([_create("acme.example")])
    _assert_no_private_material(str(info.value), secrets)


def test_delete_destroys_the_secret(provider, secrets):
    (created,) = provider.apply_batch([_create("acme.example")])
    delete = Change(Action.DELETE, _key("acme.example"), "dkim", created.data, None)
    (result,) = provider.apply_batch([delete])
    assert result.data is None
    assert secrets.list("tenants/acme/domains/") == []
    provider.apply_batch([delete])  # already gone: fine


def test_update_of_bits_is_refused_with_a_rotation_hint(provider, secrets):
    (created,) = provider.apply_batch([_create("acme.example")])
    change = Change(
        Action.UPDATE, _key("acme.example"), "dkim", created.data, _data("acme.example", bits=2048)
    )
    with pytest.raises(ProviderError, match="bits") as info:
        provider.apply_batch([change])
    assert "rotate" in str(info.value)
    _assert_no_private_material(str(info.value), secrets)


def test_update_without_a_real_change_keeps_the_key(provider, secrets):
    (created,) = provider.apply_batch([_create("acme.example")])
    change = Change(
        Action.UPDATE, _key("acme.example"), "dkim", created.data, _data("acme.example")
    )
    (result,) = provider.apply_batch([change])
    assert result.data == created.data
    assert secrets.puts == 1


def test_unsupported_algorithm_and_bad_names(provider):
    with pytest.raises(ProviderError, match="ed25519"):
        provider.apply_batch([_create("acme.example", algorithm="ed25519")])
    bad = Change(Action.CREATE, ResourceKey("dkim", "acme", "acme.example"), "dkim", None, {})
    with pytest.raises(ProviderError, match="<domain>/<selector>"):
        provider.apply_batch([bad])
    mismatch = Change(Action.CREATE, _key("a.example"), "dkim", None, _data("b.example"))
    with pytest.raises(ProviderError, match="do not match"):
        provider.apply_batch([mismatch])
    traversal = Change(Action.CREATE, ResourceKey("dkim", "acme", "../x/pm1"), "dkim", None, {})
    with pytest.raises(ProviderError):
        provider.apply_batch([traversal])


def test_backend_failure_never_leaks_the_private_key(provider, secrets):
    secrets.fail_put = True
    with pytest.raises(PenguinError) as info:
        provider.apply_batch([_create("acme.example")])
    text = str(info.value) + repr(info.value)
    assert "domains/acme.example/dkim/pm202611" in text
    assert "PRIVATE KEY" not in text
    assert secrets.data == {}
