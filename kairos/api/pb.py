"""The generated kairos.v1 modules, with a clear error when `make proto` has not run."""

from __future__ import annotations

try:
    from kairos.api.gen import engine_pb2 as pb
    from kairos.api.gen import engine_pb2_grpc as pb_grpc
except ImportError as exc:  # pragma: no cover - depends on the build step
    raise ImportError(
        "kairos/api/gen is missing or stale: run `make proto` (python -m scripts.gen_proto)"
    ) from exc

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["TradingEngine"].full_name

__all__ = ["SERVICE_NAME", "pb", "pb_grpc"]
