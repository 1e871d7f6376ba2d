"""Serving settings, from the environment variables SageMaker sets on a model's container."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .limits import RESERVED_FILES, open_file_limit, usable_cpus


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"environment variable {name}={raw!r} must be a whole number") from None
    if value < 1:
        raise SystemExit(f"environment variable {name}={raw!r} must be at least 1")
    return value


@dataclass(frozen=True)
class ServerConfig:
    port: int
    workers: int
    timeout: int
    max_payload_mb: int
    model_dir: str
    batch: bool = False  # SAGEMAKER_BATCH: set by SageMaker in batch transform jobs
    # Slow or stuck clients and computations (README, "Environment variables"): seconds for a
    # request's headers, longest pause while its body arrives (then 408), /invocations one worker
    # takes at once (then 503), its open connections (from the open-file limit), and how long a
    # computation may go on after its 504 before the worker retires.
    header_timeout: float = 10
    body_timeout: float = 10
    max_invocations: int = 32
    max_connections: int = 960
    retire_grace: float = 5

    @classmethod
    def from_env(cls) -> "ServerConfig":
        return cls(
            port=_int_env("SAGEMAKER_BIND_TO_PORT", 8080),
            workers=_int_env("SAGEMAKER_MODEL_SERVER_WORKERS", usable_cpus()),
            timeout=_int_env("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
            max_payload_mb=_int_env("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
            model_dir=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
            batch=os.environ.get("SAGEMAKER_BATCH", "").strip().lower() in ("true", "1"),
            header_timeout=_int_env("BYOC_HEADER_TIMEOUT", 10),
            body_timeout=_int_env("BYOC_BODY_TIMEOUT", 10),
            max_invocations=_int_env("BYOC_MAX_CONCURRENT_INVOCATIONS", 32),
            max_connections=_int_env("BYOC_MAX_CONNECTIONS", max(16, open_file_limit() - RESERVED_FILES)),
            retire_grace=_int_env("BYOC_RETIRE_GRACE", 5),
        )

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024
