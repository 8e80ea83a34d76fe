"""Layered configuration, validated once into frozen dataclasses.

Layers, later wins: ``config/default.yaml`` <- ``config/{APP_ENV}.yaml`` <- ``config/local.yaml`` <-
environment ``KAIROS__SECTION__KEY`` (values parsed as YAML scalars). An unknown key, a wrong type or
a missing secret is one ConfigError naming the key and the file that set it. Secrets are `Secret`
fields: they may only come from the environment and never show in repr, logs or APIs. The generic
merge/validate machinery is kairos/layers.py; this module declares the sections and their checks.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kairos.errors import ConfigError
from kairos.layers import NO_SECRET, Secret, build, env_layer, merge, plain, read_yaml
from kairos.ring.wait import WAITS

ENV_PREFIX = "KAIROS__"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"




@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    dir: str = "var/log"
    console: bool = True
    json_files: bool = True
    backup_days: int = 7

    def __post_init__(self) -> None:
        _choice("logging.level", self.level, ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))


@dataclass(frozen=True, slots=True)
class RingsConfig:
    md_capacity: int = 65536
    intents_capacity: int = 4096
    manual_capacity: int = 1024
    events_capacity: int = 16384
    wait: str = "block"
    block_timeout_ms: int = 1000

    def __post_init__(self) -> None:
        _choice("rings.wait", self.wait, WAITS)
        for name in ("md_capacity", "intents_capacity", "manual_capacity", "events_capacity"):
            value = getattr(self, name)
            if value < 2 or value & (value - 1):
                raise ConfigError(f"must be a power of two >= 2, got {value}", f"rings.{name}")


PINNABLE_ROLES = ("feed.binance", "feed.okx", "strategy", "gate", "persister")
"""The processes that pin themselves (kairos.process.run_process), under both the supervisor and systemd."""
WAITING_ROLES = ("strategy", "gate", "persister")
"""The processes that idle on ring waits (feeds wait on their sockets)."""


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """Per-process placement for bare metal: pin latency-critical processes to isolated cores and let
    them spin instead of sleeping (a wake-up from sleep is the largest cost per hop, docs/BENCHMARKS.md)."""

    cpus: dict[str, tuple[int, ...]] = field(default_factory=dict)
    waits: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role, cpus in self.cpus.items():
            _choice("tuning.cpus", role, PINNABLE_ROLES)
            if not cpus or any(cpu < 0 for cpu in cpus):
                raise ConfigError(f"expected a non-empty list of CPU numbers >= 0, got {list(cpus)}",
                                  f"tuning.cpus.{role}")
        for role, wait in self.waits.items():
            _choice("tuning.waits", role, WAITING_ROLES)
            _choice(f"tuning.waits.{role}", wait, WAITS)


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    symbol: str
    base: str
    quote: str
    binance: str = ""
    okx: str = ""


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    rest_url: str
    ws_url: str


@dataclass(frozen=True, slots=True)
class VenueConfig:
    enabled: bool = True
    endpoint: str = "sim"
    endpoints: dict[str, EndpointConfig] = field(default_factory=dict)
    taker_fee_bps: float = 10.0
    maker_fee_bps: float = 8.0
    recv_window_ms: int = 5000
    api_key: Secret = NO_SECRET
    api_secret: Secret = NO_SECRET
    passphrase: Secret = NO_SECRET

    @property
    def urls(self) -> EndpointConfig:
        return self.endpoints[self.endpoint]


@dataclass(frozen=True, slots=True)
class FeedConfig:
    channels: tuple[str, ...] = ("bbo", "trades", "depth")
    depth_levels: int = 10
    ws_reconnect_delay_ms: int = 500
    ws_max_reconnect_delay_ms: int = 30000
    ws_max_reconnect_attempts: int = 0
    watchdog_ms: int = 15000
    ping_interval_s: float = 20.0
    snapshot_retries: int = 5
    rest_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for ch in self.channels:
            _choice("feeds.channels", ch, ("bbo", "trades", "depth"))


@dataclass(frozen=True, slots=True)
class ArbitrageConfig:
    enabled: bool = False
    instruments: tuple[str, ...] = ()
    min_edge_bps: float = 5.0
    max_qty: float = 0.01
    cooldown_ms: int = 500
    leg_timeout_ms: int = 2000
    max_book_age_ms: int = 2000
    min_qty: float = 0.0001
    hedge_slippage_bps: float = 20.0
    max_hedge_attempts: int = 3


@dataclass(frozen=True, slots=True)
class MarketMakingConfig:
    enabled: bool = False
    venue: str = "binance"
    instruments: tuple[str, ...] = ()
    spread_bps: float = 10.0
    size: float = 0.001
    skew_bps_per_unit: float = 50.0
    max_inventory: float = 0.01
    requote_bps: float = 2.0
    use_microprice: bool = True
    max_book_age_ms: int = 5000
    reject_backoff_ms: int = 1000


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    arbitrage: ArbitrageConfig = field(default_factory=ArbitrageConfig)
    market_making: MarketMakingConfig = field(default_factory=MarketMakingConfig)
    recover_on_start: bool = True
    recover_cancel_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RiskConfig:
    initial_state: str = "ACTIVE"
    max_order_qty: float = 1.0
    max_order_notional: float = 50000.0
    max_position: float = 2.0
    max_gross_exposure: float = 200000.0
    price_band_bps: float = 200.0
    max_orders_per_sec: int = 20
    max_open_orders: int = 50
    stop_loss_bps: float = 0.0
    take_profit_bps: float = 0.0
    daily_loss_limit: float = 1000.0
    journal_dir: str = "var/gate"
    journal_compact_entries: int = 200_000

    def __post_init__(self) -> None:
        _choice("risk.initial_state", self.initial_state, ("ACTIVE", "REDUCE_ONLY", "HALTED"))
        _not_negative("risk.journal_compact_entries", self.journal_compact_entries, "0 never compacts")


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    mode: str = "paper"
    paper_latency_ms: float = 1.0
    paper_slippage_bps: float = 1.0
    paper_balances: dict[str, float] = field(default_factory=lambda: {"USDT": 100000.0, "BTC": 1.0})
    http_timeout_s: float = 5.0
    max_retries: int = 3
    workers: int = 4
    sync_interval_ms: int = 250
    clock_sync_s: float = 300.0
    max_cancel_delay_s: float = 10.0

    def __post_init__(self) -> None:
        _choice("execution.mode", self.mode, ("paper", "live"))


@dataclass(frozen=True, slots=True)
class PersisterConfig:
    enabled: bool = True
    dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    batch_rows: int = 5000
    flush_ms: int = 200
    spool_dir: str = "var/spool"
    retry_s: float = 2.0
    schema: str = "kairos"
    storage: str = "auto"
    partition_days_ahead: int = 3
    redis_prefix: str = "kairos"
    spool_segment_mb: int = 4
    spool_segment_s: float = 5.0
    spool_reserve_kb: int = 16384
    fsync_ms: int = 200
    stop_drain_s: float = 5.0
    connect_timeout_s: float = 3.0
    md_retention_days: int = 0
    state_retention_days: int = 0
    spool_max_mb: int = 4096

    def __post_init__(self) -> None:
        _choice("persister.storage", self.storage, ("auto", "native", "timescale"))
        for name in ("md_retention_days", "state_retention_days", "spool_max_mb"):
            _not_negative(f"persister.{name}", getattr(self, name), "0 keeps everything")
        _not_negative("persister.spool_reserve_kb", self.spool_reserve_kb, "0 reserves nothing")
        if self.spool_segment_mb <= 0 or self.spool_segment_s <= 0:
            raise ConfigError("spool segments rotate by size and age: both must be > 0", "persister.spool_segment_s")


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50551
    api_token: Secret = NO_SECRET
    heartbeat_timeout_s: float = 10.0
    start_secs: float = 1.0
    start_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    graceful_secs: float = 10.0
    cancel_on_shutdown: bool = True
    stable_secs: float = 60.0
    order_timeout_s: float = 2.0
    max_subscribers: int = 8
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
class SimConfig:
    host: str = "127.0.0.1"
    binance_rest_port: int = 18081
    binance_ws_port: int = 18091
    okx_rest_port: int = 18082
    okx_ws_port: int = 18092
    seed: int = 7
    rate_hz: float = 50.0
    replay_file: str = ""
    replay_speed: float = 1.0
    start_prices: dict[str, float] = field(default_factory=lambda: {"BTC-USDT": 60000.0, "ETH-USDT": 3000.0})
    levels: int = 50
    volatility_bps: float = 0.2
    trade_probability: float = 0.3
    dislocation_probability: float = 0.0
    dislocation_bps: float = 40.0
    dislocation_decay: float = 0.9
    okx_ws_snapshot: bool = True
    binance_ping_interval_s: float = 20.0
    okx_idle_timeout_s: float = 30.0
    okx_keepalive_s: float = 60.0


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
            _choice("venues", name, ("binance", "okx"))
            if venue.endpoint not in venue.endpoints:
                raise ConfigError(f"unknown endpoint {venue.endpoint!r}", f"venues.{name}.endpoint")
            if self.execution.mode == "live" and venue.enabled:
                needed = ("api_key", "api_secret") + (("passphrase",) if name == "okx" else ())
                for secret in needed:
                    if not getattr(venue, secret):
                        env = f"{ENV_PREFIX}VENUES__{name.upper()}__{secret.upper()}"
                        raise ConfigError(f"missing secret: set {env}", f"venues.{name}.{secret}", "environment")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{value!r} is not one of {', '.join(allowed)}", key)


def _not_negative(key: str, value: int, zero: str) -> None:
    if value < 0:
        raise ConfigError(f"must be >= 0 ({zero}), got {value}", key)


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
    for path in files:
        if path.exists():
            merge(merged, read_yaml(path), sources, str(path), "")
    merge(merged, env_layer(environ, ENV_PREFIX, _SECRET_NAMES), sources, "environment", "")
    return build(Settings, merged, sources, "")


_SECRET_NAMES = frozenset(
    f.name for cls in (VenueConfig, SupervisorConfig) for f in dataclasses.fields(cls)
    if typing.get_type_hints(cls)[f.name] is Secret
)


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret replaced: safe to log or return over gRPC."""
    return plain(settings)
