"""Vault token lifetimes: an AppRole token is renewed (or replaced by a fresh login) before it
expires during a long run; a VAULT_TOKEN is looked up once and its expiry is one clear error.
The double and the backend share an injected clock, so nothing sleeps."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest
from fakes.vault import FakeVault

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.vault import VaultBackend, VaultConfig

POLICY = [
    ("secret/data/penguinctl/*", {"create", "read", "update"}),
    ("secret/metadata/penguinctl/*", {"list", "read", "delete"}),
]


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def vault(clock):
    with FakeVault() as fake:
        fake.clock = clock
        yield fake


def _backend(vault: FakeVault, clock: Clock, **env: str) -> VaultBackend:
    return VaultBackend(VaultConfig.from_env({"VAULT_ADDR": vault.url, **env}), clock=clock)


def _count(vault: FakeVault, path: str, status: int | None = None) -> int:
    return sum(1 for r in vault.requests if r.path == path and status in (None, r.status))


def test_approle_token_is_renewed_then_replaced_at_its_max_ttl(vault, clock):
    vault.add_approle("role-1", "secret-1", POLICY, token_ttl=60, token_max_ttl=200)
    backend = _backend(vault, clock, VAULT_ROLE_ID="role-1", VAULT_SECRET_ID="secret-1")
    backend.put("servers/mx1/ssh", {"private_key": "k1"})
    assert _count(vault, "auth/approle/login") == 1
    # a long run: one request every 15 s for 10 minutes, well past the TTL and the max TTL
    for i in range(40):
        clock.advance(15)
        assert backend.get("servers/mx1/ssh")["private_key"].reveal() == "k1", i
    renewals = _count(vault, "auth/token/renew-self", 200)
    logins = _count(vault, "auth/approle/login", 200)
    assert renewals >= 3  # renewed while it could be
    assert logins >= 3  # a fresh login each time the max TTL (200 s) ran out
    denied = [r for r in vault.requests if r.status == 403]
    assert denied == []  # never used an expired token
    # renewed only when close to the end: not on every request
    assert renewals + logins < 40


def test_approle_token_revoked_meanwhile_gets_one_fresh_login(vault, clock):
    vault.add_approle("role-1", "secret-1", POLICY, token_ttl=3600)
    backend = _backend(vault, clock, VAULT_ROLE_ID="role-1", VAULT_SECRET_ID="secret-1")
    backend.put("a/b", {"k": "v"})
    vault.revoke(backend._connect().token)
    assert backend.get("a/b")["k"].reveal() == "v"
    assert _count(vault, "auth/approle/login", 200) == 2
    # a real permission problem is still reported as one (after one re-login attempt)
    with pytest.raises(SecretError, match="Vault denied 'read' on secret/data/elsewhere"):
        backend.read_mount_path("elsewhere")


def test_non_renewable_or_capped_renewal_logs_in_again(vault, clock):
    vault.add_approle("role-1", "secret-1", POLICY, token_ttl=60, token_max_ttl=70)
    backend = _backend(vault, clock, VAULT_ROLE_ID="role-1", VAULT_SECRET_ID="secret-1")
    backend.put("a/b", {"k": "v"})
    clock.advance(50)  # 10 s left, and the max TTL allows only 20 s more: log in again
    assert backend.get("a/b")["k"].reveal() == "v"
    assert _count(vault, "auth/token/renew-self", 200) == 1
    assert _count(vault, "auth/approle/login", 200) == 2


def test_vault_token_is_looked_up_once_and_its_expiry_is_clear(vault, clock):
    vault.add_token("short", POLICY, ttl=120)
    backend = _backend(vault, clock, VAULT_TOKEN="short")
    backend.put("a/b", {"k": "v"})
    for _ in range(5):
        clock.advance(10)
        assert backend.get("a/b")["k"].reveal() == "v"
    assert _count(vault, "auth/token/lookup-self") == 1
    assert _count(vault, "auth/token/renew-self") == 0  # a given token is never extended
    clock.advance(100)
    with pytest.raises(SecretError) as err:
        backend.get("a/b")
    text = str(err.value)
    assert "the Vault token (VAULT_TOKEN) expired at 20" in text and "during this run" in text
    assert "short" not in text  # never the token itself
    # a token that is already expired (revoked by Vault) is rejected at connect, in one line
    with pytest.raises(SecretError, match="rejected VAULT_TOKEN: the token is invalid or expired"):
        _backend(vault, clock, VAULT_TOKEN="short").get("a/b")
    # a token without a TTL (root, or a periodic token's view here) never expires
    forever = _backend(vault, clock, VAULT_TOKEN=vault.token)
    clock.advance(10**6)
    assert forever.get("a/b")["k"].reveal() == "v"


def test_double_follows_vaults_token_api(vault, clock):
    """What hvac sees: lookup-self TTLs, renew-self leases, capped renewals, errors."""
    vault.add_token("renewable", POLICY, ttl=100, max_ttl=150)
    client = hvac.Client(url=vault.url, token="renewable")
    info = client.auth.token.lookup_self()["data"]
    assert (info["ttl"], info["renewable"], info["creation_ttl"]) == (100, True, 100)
    assert info["expire_time"].endswith("Z") and "default" in info["policies"]
    clock.advance(40)
    assert client.auth.token.lookup_self()["data"]["ttl"] == 60
    renewed = client.auth.token.renew_self()
    assert renewed["auth"]["lease_duration"] == 100 and renewed["auth"]["renewable"] is True
    assert renewed["auth"]["client_token"] == "renewable" and renewed["warnings"] is None
    clock.advance(40)  # 80 s since creation; the max TTL leaves 70
    capped = client.auth.token.renew_self(increment="5m")
    assert capped["auth"]["lease_duration"] == 70
    assert capped["warnings"] == [
        'TTL of "5m0s" exceeded the effective max_ttl of "1m10s"; TTL value is capped accordingly'
    ]
    clock.advance(71)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()  # expired, hence revoked
    vault.add_token("fixed", POLICY, ttl=100, renewable=False)
    vault.add_token("bare", POLICY, ttl=100, default_policy=False)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        hvac.Client(url=vault.url, token="fixed").auth.token.renew_self()
    with pytest.raises(hvac.exceptions.InvalidRequest, match="lease is not renewable"):
        hvac.Client(url=vault.url, token=vault.token).auth.token.renew_self()  # root: no lease
    # without Vault's default policy a token cannot even look itself up
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=vault.url, token="bare").auth.token.lookup_self()
    # AppRole logins issue renewable tokens with the role's TTL
    vault.add_approle("r", "s", POLICY, token_ttl=30)
    login = hvac.Client(url=vault.url).auth.approle.login(role_id="r", secret_id="s")
    assert (login["auth"]["lease_duration"], login["auth"]["renewable"]) == (30, True)
