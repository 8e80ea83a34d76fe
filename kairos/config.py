"""Layered configuration, validated once into frozen dataclasses.

Layers, later wins: ``config/default.yaml`` <- ``config/{APP_ENV}.yaml`` <- ``config/local.yaml`` <-
environment ``KAIROS__SECTION__KEY`` (values parsed as YAML scalars). An unknown key, a wrong type or
a missing secret is one ConfigError naming the key and the file that set it. Secrets are `Secret`
fields: they may only come from the environment and never show in repr, logs or APIs. The generic
merge/validate machinery is kairos/layers.py; this module declares the sections and their checks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kairos.errors import ConfigError
from kairos.layers import NO_SECRET, Secret, build, env_layer, merge, plain, read_yaml
from kairos.ranges import disabled, flag, num, ranged
from kairos.ring.wait import WAITS
from kairos.venues import BY_NAME, NAMES

ENV_PREFIX = "KAIROS__"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

# Every int/float field declares its range with `num(default, lo, hi, ...)` (kairos/ranges.py), applied by the
# loader; tests/unit/test_config.py fails on a numeric field without one and exercises every bound.
HOUR_MS = 3_600_000
BPS = 10_000.0
"""100 % in basis points: the upper bound of every bps setting that cannot sensibly exceed it."""


def _limit(default: float, check: str, hi: float = float("inf")) -> Any:
    """A safety limit: > 0, or 0 to switch ``check`` off (allowed, but every start-up warns)."""
    return num(default, 0, hi, gt=True, off=f"no {check}", safety=f"no {check}")


def _port(default: int) -> Any:
    """A TCP port to listen on; 0 lets the OS choose a free one (tests run side by side that way)."""
    return num(default, 1, 65535, off="a free port chosen by the OS")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    dir: str = "var/log"
    console: bool = True
    json_files: bool = True
    backup_days: int = num(7, 0, 3650, gt=True, off="keep every file")

    def __post_init__(self) -> None:
        _choice("logging.level", self.level, ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))


@dataclass(frozen=True, slots=True)
class RingsConfig:
    md_capacity: int = num(65536, 2, 2**30, pow2=True)
    intents_capacity: int = num(4096, 2, 2**30, pow2=True)
    manual_capacity: int = num(1024, 2, 2**30, pow2=True)
    events_capacity: int = num(16384, 2, 2**30, pow2=True)
    wait: str = "block"
    block_timeout_ms: int = num(1000, 1, HOUR_MS)
    spin_us: int = num(0, 0, 10_000, gt=True, off="sleep at once")
    """``block`` waits: re-check the rings this long before sleeping (kairos/ring/wait.py, docs/RING.md)."""

    def __post_init__(self) -> None:
        _choice("rings.wait", self.wait, WAITS)


PINNABLE_ROLES = (*(f"feed.{name}" for name in NAMES), "strategy", "gate", "persister")
"""The processes that pin themselves (kairos.process.run_process), under both the supervisor and systemd."""
WAITING_ROLES = ("strategy", "gate", "persister")
"""The processes that idle on ring waits (feeds wait on their sockets)."""


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """Per-process placement for bare metal: pin latency-critical processes to isolated cores and let
    them spin instead of sleeping (a wake-up from sleep is the largest cost per hop, docs/BENCHMARKS.md)."""

    cpus: dict[str, tuple[int, ...]] = field(default_factory=dict, metadata=ranged(0, 4095))
    waits: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role, cpus in self.cpus.items():
            _choice("tuning.cpus", role, PINNABLE_ROLES)
            if not cpus:
                raise ConfigError("expected a non-empty list of CPU numbers", f"tuning.cpus.{role}")
        for role, wait in self.waits.items():
            _choice("tuning.waits", role, WAITING_ROLES)
            _choice(f"tuning.waits.{role}", wait, WAITS)


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    symbol: str
    base: str
    quote: str
    symbols: dict[str, str] = field(default_factory=dict)  # venue name -> the venue's symbol (kairos/venues.py)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    rest_url: str
    ws_url: str
    private_url: str = ""  # private order stream (Binance WS API, OKX private WS); "" = REST polling only


@dataclass(frozen=True, slots=True)
class VenueConfig:
    enabled: bool = True
    endpoint: str = "sim"
    endpoints: dict[str, EndpointConfig] = field(default_factory=dict)
    taker_fee_bps: float = num(10.0, 0, 100)
    maker_fee_bps: float = num(8.0, -100, 100)
    recv_window_ms: int = num(5000, 1, 60000)
    api_key: Secret = NO_SECRET
    api_secret: Secret = NO_SECRET
    passphrase: Secret = NO_SECRET

    @property
    def urls(self) -> EndpointConfig:
        return self.endpoints[self.endpoint]


@dataclass(frozen=True, slots=True)
class FeedConfig:
    channels: tuple[str, ...] = ("bbo", "trades", "depth")
    depth_levels: int = num(10, 1, 1000)
    ws_reconnect_delay_ms: int = num(500, 1, HOUR_MS)
    ws_max_reconnect_delay_ms: int = num(30000, 1, HOUR_MS)
    ws_max_reconnect_attempts: int = num(0, 1, 1_000_000, off="keep trying forever")
    watchdog_ms: int = num(15000, 1, HOUR_MS)
    ping_interval_s: float = num(20.0, 0, 3600, gt=True)
    snapshot_retries: int = num(5, 1, 1000)
    rest_timeout_s: float = num(5.0, 0, 600, gt=True)
    max_jump_bps: float = num(500.0, 1.0, 10_000.0)
    jump_confirm_quotes: int = num(2, 1, 1000)
    max_frame_bytes: int = num(1_048_576, 4096, 67_108_864)
    max_price: float = num(10_000_000.0, 0.0, 9e7, gt=True)  # 9e7: integer price keys stay exact (feeds/book.py)
    max_qty: float = num(1e12, 0.0, gt=True)
    max_levels: int = num(5000, 1, 1_000_000)

    def __post_init__(self) -> None:
        for ch in self.channels:
            _choice("feeds.channels", ch, ("bbo", "trades", "depth"))


@dataclass(frozen=True, slots=True)
class ArbitrageConfig:
    enabled: bool = False
    instruments: tuple[str, ...] = ()
    min_edge_bps: float = num(5.0, 0, BPS)
    max_qty: float = num(0.01, 0, gt=True)
    cooldown_ms: int = num(500, 0, HOUR_MS)
    leg_timeout_ms: int = num(2000, 1, HOUR_MS)
    max_book_age_ms: int = num(2000, 1, HOUR_MS)
    min_qty: float = num(0.0001, 0, gt=True)
    hedge_slippage_bps: float = num(20.0, 0, BPS)
    max_hedge_attempts: int = num(3, 1, 100)
    max_edge_bps: float = num(300.0, 0, BPS, gt=True)


@dataclass(frozen=True, slots=True)
class MarketMakingConfig:
    enabled: bool = False
    venue: str = "binance"
    instruments: tuple[str, ...] = ()
    spread_bps: float = num(10.0, 0, BPS, gt=True)
    size: float = num(0.001, 0, gt=True)
    skew_bps_per_unit: float = num(50.0, 0, 1e6)
    max_inventory: float = num(0.01, 0, gt=True)
    requote_bps: float = num(2.0, 0, BPS)
    use_microprice: bool = True
    max_book_age_ms: int = num(5000, 1, HOUR_MS)
    reject_backoff_ms: int = num(1000, 0, HOUR_MS)


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    arbitrage: ArbitrageConfig = field(default_factory=ArbitrageConfig)
    market_making: MarketMakingConfig = field(default_factory=MarketMakingConfig)
    recover_on_start: bool = True
    recover_cancel_timeout_s: float = num(10.0, 0, 3600, gt=True)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    initial_state: str = "ACTIVE"
    max_order_qty: float = _limit(1.0, "order quantity cap (MAX_ORDER_QTY)")
    max_order_notional: float = _limit(50000.0, "order notional cap (MAX_ORDER_NOTIONAL)")
    max_position: float = _limit(2.0, "position cap (MAX_POSITION)")
    max_gross_exposure: float = _limit(200000.0, "gross exposure cap (MAX_GROSS_EXPOSURE)")
    price_band_bps: float = _limit(200.0, "price band (PRICE_BAND)", BPS)
    max_orders_per_sec: int = _limit(20, "order rate limit (ORDER_RATE)", 10_000_000)
    max_open_orders: int = _limit(50, "open orders cap (MAX_OPEN_ORDERS)", 10_000_000)
    stop_loss_bps: float = _limit(0.0, "stop-loss exits", BPS)
    take_profit_bps: float = num(0.0, 0, 1e6, gt=True, off="no take-profit exits")
    daily_loss_limit: float = _limit(1000.0, "daily loss limit (HALTED at -limit)")
    journal_dir: str = "var/gate"
    journal_compact_entries: int = num(200_000, 1, 10**9, off="never compacts")
    mark_max_age_ms: int = _limit(5000, "mark age limit (MARK_UNAVAILABLE)", HOUR_MS)
    mark_max_move_bps: float = num(1000.0, 0, BPS, gt=True)

    def __post_init__(self) -> None:
        _choice("risk.initial_state", self.initial_state, ("ACTIVE", "REDUCE_ONLY", "HALTED"))


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    mode: str = "paper"
    paper_latency_ms: float = num(1.0, 0, 60000)
    paper_slippage_bps: float = num(1.0, 0, 1000)
    paper_balances: dict[str, float] = field(default_factory=lambda: {"USDT": 100000.0, "BTC": 1.0},
                                             metadata=ranged(0))
    http_timeout_s: float = num(5.0, 0, 600, gt=True)
    max_retries: int = num(3, 0, 100)
    workers: int = num(4, 1, 256)
    sync_interval_ms: int = num(250, 1, HOUR_MS)
    clock_sync_s: float = num(300.0, 0, 86400, gt=True)
    max_cancel_delay_s: float = num(10.0, 0, 3600)
    rate_limit_scale: float = num(1.0, 0, 1, gt=True)
    rate_reserve_pct: float = num(20.0, 0, 100)
    rate_wait_s: float = num(2.0, 0, 600)
    reconcile_s: float = num(5.0, 0, 3600, gt=True)
    stream_watchdog_s: float = num(10.0, 0, 600, gt=True)
    stream_backoff_max_s: float = num(10.0, 0, 600, gt=True)
    ws_orders: bool = True
    """Place and cancel over the venue's order WebSocket where it has one; false: always REST."""

    def __post_init__(self) -> None:
        _choice("execution.mode", self.mode, ("paper", "live"))


@dataclass(frozen=True, slots=True)
class PersisterConfig:
    enabled: bool = True
    dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    batch_rows: int = num(5000, 1, 10_000_000)
    flush_ms: int = num(200, 1, HOUR_MS)
    spool_dir: str = "var/spool"
    retry_s: float = num(2.0, 0, 3600, gt=True)
    schema: str = "kairos"
    storage: str = "auto"
    partition_days_ahead: int = num(3, 1, 365)
    redis_prefix: str = "kairos"
    spool_segment_mb: int = num(4, 1, 4096)
    spool_segment_s: float = num(5.0, 0, 3600, gt=True)
    spool_reserve_kb: int = num(16384, 1, 10**8, off="no disk held back for executions")
    fsync_ms: int = num(200, 1, HOUR_MS)
    stop_drain_s: float = num(5.0, 0, 3600)
    connect_timeout_s: float = num(3.0, 0, 600, gt=True)
    md_retention_days: int = num(0, 1, 36500, off="keep everything")
    state_retention_days: int = num(0, 1, 36500, off="keep everything")
    spool_max_mb: int = num(4096, 1, 10**9, off="no cap")
    create_database: bool = False

    def __post_init__(self) -> None:
        _choice("persister.storage", self.storage, ("auto", "native", "timescale"))


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    grpc_host: str = "127.0.0.1"
    grpc_port: int = _port(50551)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = num(9464, 1, 65535, off="no /metrics")
    api_token: Secret = NO_SECRET
    heartbeat_timeout_s: float = num(10.0, 0, 3600, gt=True)
    start_secs: float = num(1.0, 0, 3600)
    start_retries: int = num(5, 0, 1000)
    backoff_initial_s: float = num(0.5, 0, 3600)
    backoff_max_s: float = num(30.0, 0, 3600)
    graceful_secs: float = num(10.0, 0, 3600)
    cancel_on_shutdown: bool = flag(True, "every open order is cancelled when the supervisor stops")
    stable_secs: float = num(60.0, 0, 86400)
    order_timeout_s: float = num(2.0, 0, 600, gt=True)
    max_subscribers: int = num(8, 1, 1000)
    open_reads: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together (both PEM paths, or neither for plaintext)",
                              "supervisor.tls_key" if self.tls_cert else "supervisor.tls_cert")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("mutual TLS needs the server's own tls_cert and tls_key", "supervisor.tls_client_ca")


@dataclass(frozen=True, slots=True)
class SimVenueConfig:
    """One venue's simulated servers (``sim.venues.<name>``): where they listen and the connection rules they play."""

    rest_port: int = _port(0)
    ws_port: int = _port(0)
    private_port: int = _port(0)
    ping_interval_s: float = num(0.0, 0, 3600, gt=True, off="the server never pings")
    idle_timeout_s: float = num(0.0, 0, 3600, gt=True, off="an idle connection is never closed")
    keepalive_s: float = num(0.0, 0, 3600, gt=True, off="never")
    ws_snapshot: bool = True


@dataclass(frozen=True, slots=True)
class SimConfig:
    host: str = "127.0.0.1"
    venues: dict[str, SimVenueConfig] = field(default_factory=dict)
    seed: int = num(7, 0, 2**63 - 1)
    rate_hz: float = num(50.0, 0, 100_000, gt=True, off="no random walk")
    replay_file: str = ""
    replay_speed: float = num(1.0, 0, 1e6, gt=True, off="as fast as possible")
    start_prices: dict[str, float] = field(default_factory=lambda: {"BTC-USDT": 60000.0, "ETH-USDT": 3000.0},
                                           metadata=ranged(0, gt=True))
    levels: int = num(50, 1, 10_000)
    volatility_bps: float = num(0.2, 0, 1000)
    trade_probability: float = num(0.3, 0, 1)
    dislocation_probability: float = num(0.0, 0, 1)
    dislocation_bps: float = num(40.0, 0, BPS)
    dislocation_decay: float = num(0.9, 0, 1)
    rate_limit_scale: float = num(1.0, 0, 1, gt=True)
    rate_ban_after: int = num(2, 1, 1000)
    rate_ban_s: float = num(120.0, 0, 86400, gt=True)

    def venue(self, name: str) -> SimVenueConfig:
        """``sim.venues.<name>``, or the defaults (ephemeral ports, no pings, no idle cut) when not configured."""
        return self.venues.get(name, SimVenueConfig())


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = "dev"
    shm_prefix: str = "kairos"
    instruments: tuple[InstrumentConfig, ...] = ()
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    rings: RingsConfig = field(default_factory=RingsConfig)
    venues: dict[str, VenueConfig] = field(default_factory=dict)
    feeds: FeedConfig = field(default_factory=FeedConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    persister: PersisterConfig = field(default_factory=PersisterConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)

    def wait_for(self, role: str) -> str:
        """How ``role`` waits when its rings are idle: its tuning.waits entry, else rings.wait."""
        return self.tuning.waits.get(role, self.rings.wait)

    def __post_init__(self) -> None:
        for name, venue in self.venues.items():
            _choice("venues", name, NAMES)
            if venue.endpoint not in venue.endpoints:
                raise ConfigError(f"unknown endpoint {venue.endpoint!r}", f"venues.{name}.endpoint")
        for index, inst in enumerate(self.instruments):
            for name in inst.symbols:
                _choice(f"instruments[{index}].symbols", name, NAMES)
        for name in self.sim.venues:
            _choice("sim.venues", name, NAMES)

    def check_venue_secrets(self) -> None:
        """Live trading needs every enabled venue's keys. Checked only by the processes that hold them (the gate,
        the spawning supervisor): the others never see the keys (kairos/supervisor/secrets.py)."""
        for name, venue in self.venues.items():
            if self.execution.mode == "live" and venue.enabled:
                for secret in BY_NAME[name].secrets:
                    if not getattr(venue, secret):
                        env = f"{ENV_PREFIX}VENUES__{name.upper()}__{secret.upper()}"
                        raise ConfigError(f"missing secret: set {env}", f"venues.{name}.{secret}", "environment")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{value!r} is not one of {', '.join(allowed)}", key)


def load(config_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge the layers and validate; raise ConfigError naming the key and file on any problem."""
    environ = os.environ if env is None else env
    root = config_dir or Path(environ.get("KAIROS_CONFIG_DIR", CONFIG_DIR))
    app_env = environ.get("APP_ENV", "")
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    files = [root / "default.yaml"] + ([root / f"{app_env}.yaml"] if app_env else []) + [root / "local.yaml"]
    if not files[0].exists():
        raise ConfigError("default configuration file is missing", "", str(files[0]))
    if app_env and not re.fullmatch(r"[A-Za-z0-9_-]+", app_env):
        raise ConfigError(f"APP_ENV={app_env!r} must be a plain name (letters, digits, _ and -): it selects "
                          "config/<name>.yaml", "", "environment")
    if app_env and not files[1].exists():
        raise ConfigError(f"APP_ENV={app_env} names a configuration file that does not exist", "", str(files[1]))
    for path in files:
        if path.exists():
            merge(merged, read_yaml(path), sources, str(path), "")
    merge(merged, env_layer(environ, ENV_PREFIX, _SECRET_NAMES), sources, "environment", "")
    return build(Settings, merged, sources, "")


_SECRET_NAMES = frozenset(
    f.name for cls in (VenueConfig, SupervisorConfig) for f in dataclasses.fields(cls)
    if typing.get_type_hints(cls)[f.name] is Secret
)
SECRET_NAMES = _SECRET_NAMES  # public: the variables kairos/supervisor/secrets.py withholds from children


def disabled_checks(settings: Settings, section: str) -> list[str]:
    """``key = value: what is off`` for each safety check of ``section`` that the settings switch off (0/false)."""
    return list(disabled(getattr(settings, section), f"{section}."))


def warn_disabled(role: str, settings: Settings, section: str) -> None:
    """One WARNING per safety check of ``section`` switched off: called at start by the process that enforces them,
    so a limit of 0 is never silent."""
    log = logging.getLogger(role)
    for line in disabled_checks(settings, section):
        log.warning("safety check disabled: %s", line)


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret replaced: safe to log or return over gRPC."""
    return plain(settings)
