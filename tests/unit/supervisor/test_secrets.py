"""Which environment variables each child is spawned with (kairos/supervisor/secrets.py)."""

from __future__ import annotations

from kairos.supervisor.secrets import child_env, section

ENV = {
    "PATH": "/usr/bin", "KAIROS__SHM_PREFIX": "p", "KAIROS__VENUES__BINANCE__ENDPOINT": "mainnet",
    "KAIROS__VENUES__BINANCE__API_KEY": "k", "KAIROS__VENUES__BINANCE__API_SECRET": "s",
    "KAIROS__VENUES__OKX__PASSPHRASE": "pp", "KAIROS__SUPERVISOR__API_TOKEN": "t", "KAIROS_API_TOKEN": "t",
    "KAIROS__SUPERVISOR__GRPC_PORT": "50551",
}
PLAIN = {"PATH", "KAIROS__SHM_PREFIX", "KAIROS__VENUES__BINANCE__ENDPOINT", "KAIROS__SUPERVISOR__GRPC_PORT"}
KEYS = {"KAIROS__VENUES__BINANCE__API_KEY", "KAIROS__VENUES__BINANCE__API_SECRET", "KAIROS__VENUES__OKX__PASSPHRASE"}


def test_secret_variables_are_known_by_their_section() -> None:
    assert section("KAIROS__VENUES__OKX__PASSPHRASE") == "venues"
    assert section("KAIROS__SUPERVISOR__API_TOKEN") == section("KAIROS_API_TOKEN") == "supervisor"
    assert section("KAIROS__VENUES__BINANCE__ENDPOINT") is None and section("PATH") is None


def test_a_role_without_secrets_gets_none() -> None:
    assert set(child_env(ENV, ())) == PLAIN


def test_the_gate_gets_the_venue_keys_and_never_the_api_token() -> None:
    assert set(child_env(ENV, ("venues",))) == PLAIN | KEYS
