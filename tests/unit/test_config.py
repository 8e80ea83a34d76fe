"""Config layering, validation errors naming key and file, and secret handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairos import config
from kairos.config import Secret, Settings
from kairos.errors import EXIT_BOOT_ERROR, ConfigError

DEFAULT = Path(config.CONFIG_DIR) / "default.yaml"


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    (tmp_path / "default.yaml").write_text(DEFAULT.read_text())
    return tmp_path


def test_default_config_loads_and_is_frozen() -> None:
    settings = config.load(env={})
    assert isinstance(settings, Settings)
    assert settings.venues["binance"].urls.rest_url.startswith("http")
    with pytest.raises(AttributeError):
        settings.risk.max_position = 5  # type: ignore[misc]


def test_layers_apply_in_order(cfg_dir: Path) -> None:
    (cfg_dir / "staging.yaml").write_text("risk: {max_position: 3.0, max_open_orders: 7}\n")
    (cfg_dir / "local.yaml").write_text("risk: {max_position: 4.0}\n")
    env = {"APP_ENV": "staging", "KAIROS__RISK__MAX_OPEN_ORDERS": "9"}
    settings = config.load(cfg_dir, env)
    assert settings.risk.max_position == 4.0
    assert settings.risk.max_open_orders == 9
    assert settings.risk.max_order_qty == 1.0


def test_unknown_key_names_key_and_file(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("risk: {max_postion: 3.0}\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.key == "risk.max_postion"
    assert err.value.source.endswith("local.yaml")
    assert err.value.exit_code == EXIT_BOOT_ERROR


def test_wrong_type_names_key_and_file(cfg_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {"KAIROS__SUPERVISOR__GRPC_PORT": "not-a-port"})
    assert err.value.key == "supervisor.grpc_port"
    assert err.value.source == "environment"
    assert "expected int" in str(err.value)


def test_nested_list_item_errors_point_at_the_item(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("instruments:\n  - {symbol: X, base: X}\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert "missing required key" in str(err.value)
    assert err.value.key == "instruments[0]"


def test_bad_choice_and_ring_capacity(cfg_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"rings\.md_capacity"):
        config.load(cfg_dir, {"KAIROS__RINGS__MD_CAPACITY": "1000"})
    with pytest.raises(ConfigError, match=r"execution\.mode"):
        config.load(cfg_dir, {"KAIROS__EXECUTION__MODE": "yolo"})


def test_invalid_yaml_is_a_config_error(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("risk: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.source.endswith("local.yaml")
    assert str(err.value).endswith(f"[in {cfg_dir / 'local.yaml'}]")


def test_secret_in_a_file_is_refused(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("venues: {binance: {api_secret: hunter2}}\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.key == "venues.binance.api_secret"
    assert "hunter2" not in str(err.value)


def test_live_mode_requires_secrets_from_env(cfg_dir: Path) -> None:
    keyless = config.load(cfg_dir, {"KAIROS__EXECUTION__MODE": "live"})  # a feed, a strategy: no keys, fine
    with pytest.raises(ConfigError, match="KAIROS__VENUES__BINANCE__API_KEY"):
        keyless.check_venue_secrets()  # the gate: refuses to start
    env = {"KAIROS__EXECUTION__MODE": "live"}
    for venue in ("BINANCE", "OKX"):
        env[f"KAIROS__VENUES__{venue}__API_KEY"] = "k"
        env[f"KAIROS__VENUES__{venue}__API_SECRET"] = "s3cr3t"
    env["KAIROS__VENUES__OKX__PASSPHRASE"] = "pp"
    settings = config.load(cfg_dir, env)
    settings.check_venue_secrets()
    assert settings.venues["okx"].api_secret.reveal() == "s3cr3t"


def test_secrets_never_print(cfg_dir: Path) -> None:
    settings = config.load(cfg_dir, {"KAIROS__SUPERVISOR__API_TOKEN": "tok-123"})
    assert settings.supervisor.api_token.reveal() == "tok-123"
    assert "tok-123" not in repr(settings)
    assert "tok-123" not in f"{settings.supervisor.api_token}"
    assert config.redacted(settings)["supervisor"]["api_token"] == "***"
    assert repr(Secret("")) == "Secret('')"


def test_missing_default_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default configuration file is missing"):
        config.load(tmp_path, {})


def test_tuning_pins_and_waits_per_role(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("tuning: {cpus: {strategy: [1], gate: [0, 1]}, waits: {gate: spin}}\n")
    settings = config.load(cfg_dir, {"KAIROS__RINGS__WAIT": "yield"})
    assert settings.tuning.cpus == {"strategy": (1,), "gate": (0, 1)}
    assert (settings.wait_for("gate"), settings.wait_for("strategy")) == ("spin", "yield")


@pytest.mark.parametrize(("yaml", "key", "words"), [
    ("tuning: {cpus: {supervisor: [0]}}", "tuning.cpus", "not one of"),
    ("tuning: {cpus: {gate: []}}", "tuning.cpus.gate", "non-empty"),
    ("tuning: {cpus: {gate: [-1]}}", "tuning.cpus.gate[0]", "must be >= 0 and <= 4095, got -1"),
    ("tuning: {cpus: {gate: [x]}}", "tuning.cpus.gate[0]", "expected int"),
    ("tuning: {waits: {feed.okx: spin}}", "tuning.waits", "not one of"),
    ("tuning: {waits: {gate: busy}}", "tuning.waits.gate", "not one of"),
])
def test_bad_tuning_names_the_key(cfg_dir: Path, yaml: str, key: str, words: str) -> None:
    (cfg_dir / "local.yaml").write_text(yaml + "\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.key == key and words in str(err.value)


@pytest.mark.parametrize("key", ["persister.md_retention_days", "persister.state_retention_days",
                                 "risk.journal_compact_entries"])
def test_negative_counts_are_refused(cfg_dir: Path, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {"KAIROS__" + key.upper().replace(".", "__"): "-1"})
    assert err.value.key == key and err.value.source == "environment"
