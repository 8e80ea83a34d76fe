"""Config layering, validation errors naming key and file, declared ranges of every number, secret handling."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import select
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest

from kairos import config, ranges
from kairos.config import Secret, Settings
from kairos.errors import EXIT_BOOT_ERROR, ConfigError
from kairos.ranges import Range

DEFAULT = Path(config.CONFIG_DIR) / "default.yaml"
REPO = Path(config.CONFIG_DIR).parent


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


@pytest.mark.parametrize(("instrument", "key", "words"), [
    ("{symbol: A-B, base: A, quote: B, symbols: {kraken: AB}}", "instruments[0].symbols", "not one of binance"),
    ("{symbol: A-B, base: A, quote: B, binance: AB}", "instruments[0].binance", "unknown key"),
    ("{symbol: A-B, base: A, quote: B, symbols: [AB]}", "instruments[0].symbols", "expected a mapping"),
])
def test_instrument_symbols_map_known_venues(cfg_dir: Path, instrument: str, key: str, words: str) -> None:
    """``symbols: {venue: symbol}`` is the only form: a venue outside kairos/venues.py or the old per-venue field is
    refused naming the key."""
    (cfg_dir / "local.yaml").write_text(f"instruments: [{instrument}]\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.key == key and words in str(err.value)


def test_sim_venues_are_table_venues(cfg_dir: Path) -> None:
    (cfg_dir / "local.yaml").write_text("sim: {venues: {kraken: {rest_port: 18083}}}\n")
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {})
    assert err.value.key == "sim.venues" and "not one of binance, okx" in str(err.value)
    (cfg_dir / "local.yaml").write_text("sim: {venues: {okx: {ws_port: 0}}}\n")
    sim = config.load(cfg_dir, {}).sim
    assert (sim.venue("okx").ws_port, sim.venue("okx").rest_port, sim.venue("okx").idle_timeout_s) == (0, 18082, 30.0)
    assert sim.venue("binance").ping_interval_s == 20.0 and not sim.venue("binance").idle_timeout_s


def test_live_secrets_come_from_the_venue_table(cfg_dir: Path) -> None:
    env = {"KAIROS__EXECUTION__MODE": "live", **{f"KAIROS__VENUES__{v}__{s}": "x" for v in ("BINANCE", "OKX")
                                                  for s in ("API_KEY", "API_SECRET")}}
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, env).check_venue_secrets()
    assert err.value.key == "venues.okx.passphrase"
    config.load(cfg_dir, {**env, "KAIROS__VENUES__OKX__PASSPHRASE": "p"}).check_venue_secrets()


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


NUMBERS = [(key, kind, bounds) for key, kind, bounds, _ in ranges.numeric_keys(Settings)]
SAMPLE_NAME = {"venues": "binance", "tuning": "gate", "sim": "okx"}
"""What stands for ``*`` in a key pattern: a name each mapping accepts (any name for balances and prices)."""


def test_every_numeric_setting_declares_a_range() -> None:
    undeclared = [key for key, _, bounds in NUMBERS if bounds is None]
    assert not undeclared, f"declare a range with num()/ranged() (kairos/ranges.py) for: {undeclared}"
    assert {"risk.max_order_qty", "supervisor.grpc_port", "rings.md_capacity", "tuning.cpus.*[]"} <= {
        key for key, _, _ in NUMBERS}


def _next(kind: type, value: float, direction: int) -> float:
    return value + direction if kind is int else math.nextafter(value, direction * math.inf)


def _bound_cases(kind: type, bounds: Range) -> list[tuple[float, bool]]:
    """(value, accepted) just outside and just inside each bound; 0 where 0 has a declared meaning."""
    lo, hi = bounds.lo, bounds.hi
    cases = [(lo, False), (_next(kind, lo, 1), True)] if bounds.gt else [(_next(kind, lo, -1), False), (lo, True)]
    huge = 1e300 if kind is float else 10**18
    cases += [(hi, True), (_next(kind, hi, 1), False)] if math.isfinite(hi) else [(huge, True)]
    if bounds.off:
        cases = [(v, ok) for v, ok in cases if v != 0] + [(0, True), (_next(kind, 0, -1), False)]
    if bounds.pow2:
        cases.append((lo * 3, False))
    return cases


def _yaml_number(kind: type, value: float) -> str:
    """A YAML scalar the loader reads back as exactly ``value`` (PyYAML floats need a dot and a signed exponent)."""
    return str(int(value)) if kind is int else format(value, ".17e")


def _value_at(settings: Settings, key: str) -> Any:
    """The loaded value at a concrete key such as ``venues.binance.taker_fee_bps`` or ``tuning.cpus.gate[0]``."""
    node: Any = settings
    for part in key.replace("[", ".[").split("."):
        if part.startswith("["):
            node = node[int(part[1:-1])]
        else:
            node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


@pytest.mark.parametrize(("key", "kind", "bounds"), NUMBERS, ids=[key for key, _, _ in NUMBERS])
def test_each_bound_of_each_number(cfg_dir: Path, key: str, kind: type, bounds: Range) -> None:
    path = key.replace("*", SAMPLE_NAME.get(key.split(".")[0], "x"))
    name, concrete = "KAIROS__" + path.replace("[]", "").upper().replace(".", "__"), path.replace("[]", "[0]")
    for value, accepted in _bound_cases(kind, bounds):
        raw = _yaml_number(kind, value)
        env = {name: f"[{raw}]" if "[]" in key else raw}
        if accepted:
            assert _value_at(config.load(cfg_dir, env), concrete) == value
            continue
        with pytest.raises(ConfigError) as err:
            config.load(cfg_dir, env)
        assert (err.value.key, err.value.source) == (concrete, "environment"), value
        assert err.value.message.startswith(f"must be {bounds.describe()}, got ")


def test_the_reported_values_are_refused_naming_key_and_file(cfg_dir: Path) -> None:
    for line, key in [("risk: {max_order_qty: -5}", "risk.max_order_qty"), ("risk: {max_position: -1}",
                      "risk.max_position"), ("risk: {daily_loss_limit: -100}", "risk.daily_loss_limit"),
                      ("supervisor: {grpc_port: 99999}", "supervisor.grpc_port")]:
        (cfg_dir / "local.yaml").write_text(line + "\n")
        with pytest.raises(ConfigError) as err:
            config.load(cfg_dir, {})
        assert err.value.key == key and err.value.source == str(cfg_dir / "local.yaml")
        assert err.value.exit_code == EXIT_BOOT_ERROR and "\n" not in str(err.value)


@pytest.mark.parametrize("raw", [".nan", ".inf", "-.inf", ".NaN"])
def test_non_finite_numbers_are_refused_everywhere(cfg_dir: Path, raw: str) -> None:
    for text, key in [(f"risk: {{max_position: {raw}}}", "risk.max_position"),
                      (f"execution: {{paper_balances: {{USDT: {raw}}}}}", "execution.paper_balances.USDT"),
                      (f"strategy: {{arbitrage: {{min_edge_bps: {raw}}}}}", "strategy.arbitrage.min_edge_bps")]:
        (cfg_dir / "local.yaml").write_text(text + "\n")
        with pytest.raises(ConfigError, match="must be a finite number") as err:
            config.load(cfg_dir, {})
        assert err.value.key == key
    (cfg_dir / "local.yaml").unlink()
    with pytest.raises(ConfigError, match="must be a finite number") as err:
        config.load(cfg_dir, {"KAIROS__SIM__RATE_HZ": raw})
    assert (err.value.key, err.value.source) == ("sim.rate_hz", "environment")
    with pytest.raises(ConfigError, match="expected float"):
        config.load(cfg_dir, {"KAIROS__SIM__RATE_HZ": "nan"})
    with pytest.raises(ConfigError, match="must be a finite number"):
        config.load(cfg_dir, {"KAIROS__RISK__MAX_POSITION": "1" + "0" * 400})  # an int no float can hold


def _fields(cls: type) -> list[tuple[type, dataclasses.Field[Any]]]:
    found = []
    for f in dataclasses.fields(cls):
        found.append((cls, f))
        inner = typing.get_type_hints(cls)[f.name]
        while typing.get_origin(inner) in (tuple, dict):
            inner = typing.get_args(inner)[-1] if typing.get_origin(inner) is dict else typing.get_args(inner)[0]
        if dataclasses.is_dataclass(inner):
            found += _fields(inner)
    return found


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, tuple):
        return [n for v in value for n in _numbers(v)]
    return [value]


def test_every_code_default_is_in_its_range() -> None:
    ranged = [(cls, f, f.metadata[ranges.RANGE]) for cls, f in _fields(Settings) if ranges.RANGE in f.metadata]
    assert len(ranged) == len(NUMBERS)
    for cls, f, bounds in ranged:
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        assert all(bounds.accepts(n) for n in _numbers(default)), f"{cls.__name__}.{f.name} = {default!r}"


def test_app_env_without_its_file_is_an_error(cfg_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(cfg_dir, {"APP_ENV": "staging"})
    assert err.value.source == str(cfg_dir / "staging.yaml") and "APP_ENV=staging" in str(err.value)
    assert err.value.exit_code == EXIT_BOOT_ERROR
    (cfg_dir / "staging.yaml").write_text("{}\n")
    assert config.load(cfg_dir, {"APP_ENV": "staging"}).risk.max_position == 2.0
    with pytest.raises(ConfigError, match="must be a plain name") as err:
        config.load(cfg_dir, {"APP_ENV": "../staging"})
    assert err.value.source == "environment"


def test_one_warning_per_disabled_safety_check(cfg_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (cfg_dir / "local.yaml").write_text("risk: {max_position: 0, max_orders_per_sec: 0, stop_loss_bps: 0}\n"
                                        "supervisor: {cancel_on_shutdown: false}\n")
    settings = config.load(cfg_dir, {})
    with caplog.at_level(logging.WARNING):
        config.warn_disabled("gate", settings, "risk")
        config.warn_disabled("supervisor", settings, "supervisor")
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [("gate", logging.WARNING, "safety check disabled: " + text) for text in (
        "risk.max_position = 0.0: no position cap (MAX_POSITION)",
        "risk.max_orders_per_sec = 0: no order rate limit (ORDER_RATE)",
        "risk.stop_loss_bps = 0.0: no stop-loss exits")] + [(
        "supervisor", logging.WARNING, "safety check disabled: supervisor.cancel_on_shutdown = False: "
        "every open order is cancelled when the supervisor stops")]
    assert config.disabled_checks(settings, "feeds") == []


def _env(tmp: Path, prefix: str, **env: str) -> dict[str, str]:
    """This machine's environment without its KAIROS settings, logging into ``tmp``, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAIROS") and k != "APP_ENV"}
    return {**clean, "KAIROS__LOGGING__DIR": str(tmp / "log"), "KAIROS__LOGGING__JSON_FILES": "false",
            "KAIROS__SHM_PREFIX": prefix, "PYTHONUNBUFFERED": "1", **env}


def _run(argv: list[str], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    full = _env(tmp, f"kairos-cfgtest-{os.getpid()}", **env)
    return subprocess.run(argv, env=full, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("role", "name"), [("procs.gate", "KAIROS__RISK__MAX_ORDER_QTY"),
                                           ("procs.supervisor", "KAIROS__SUPERVISOR__GRPC_PORT")])
def test_a_bad_number_stops_the_process_with_exit_3(tmp_path: Path, role: str, name: str) -> None:
    done = _run([sys.executable, "-m", role], {name: "99999" if "PORT" in name else "-5"}, tmp_path)
    assert done.returncode == EXIT_BOOT_ERROR, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "must be" in done.stderr and "environment" in done.stderr


def test_the_gate_warns_at_start_about_a_disabled_limit(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "procs.gate"], {"KAIROS__RISK__MAX_POSITION": "0"}, tmp_path)
    assert done.returncode != 0  # no supervisor made the rings: the gate stops after its start-up checks
    assert "safety check disabled: risk.max_position = 0.0: no position cap (MAX_POSITION)" in done.stderr


def test_the_supervisor_warns_at_start_about_a_disabled_check(tmp_path: Path, shm_prefix: str) -> None:
    env = _env(tmp_path, shm_prefix, KAIROS__SUPERVISOR__CANCEL_ON_SHUTDOWN="false",
               KAIROS__SUPERVISOR__GRPC_PORT="0", KAIROS__SUPERVISOR__METRICS_PORT="0",
               KAIROS__SUPERVISOR__API_TOKEN="t", KAIROS__SUPERVISOR__GRACEFUL_SECS="1.0")
    proc = subprocess.Popen([sys.executable, "-m", "procs.supervisor", "--watch"], env=env, cwd=REPO,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        seen, deadline = [], time.monotonic() + 60
        for _ in range(200):  # bounded by lines and by time: the warning comes before the supervisor starts work
            if time.monotonic() > deadline or not select.select([proc.stderr], [], [], 1.0)[0]:
                continue
            seen.append(proc.stderr.readline())
            if "safety check disabled" in seen[-1] or not seen[-1]:
                break
        assert "safety check disabled: supervisor.cancel_on_shutdown = False" in seen[-1], seen
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_make_run_refuses_live_mode_before_starting_anything(tmp_path: Path) -> None:
    done = _run(["make", "--no-print-directory", "run"], {"KAIROS__EXECUTION__MODE": "live"}, tmp_path)
    assert done.returncode != 0
    assert "make run is paper-only" in done.stderr and "docs/DEPLOY.md" in done.stderr
    assert "KAIROS: paper trading" not in done.stdout


def test_docs_list_every_range() -> None:
    doc = (REPO / "docs" / "CONFIG.md").read_text()
    rows = [f"| `{key}` | {kind.__name__} | {bounds.describe()}{' (WARNING at start)' if safety else ''} |"
            for key, kind, bounds, safety in ranges.numeric_keys(Settings) if bounds is not None]
    missing = [row for row in rows if row not in doc.splitlines()]
    assert not missing, "add or fix these rows in docs/CONFIG.md:\n" + "\n".join(missing)
