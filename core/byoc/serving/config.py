"""Serving settings, from the environment variables SageMaker sets on a model's container."""
from __future__ import annotations

import os
from dataclasses import dataclass


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

    @classmethod
    def from_env(cls) -> "ServerConfig":
        return cls(
            port=_int_env("SAGEMAKER_BIND_TO_PORT", 8080),
            workers=_int_env("SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1),
            timeout=_int_env("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
            max_payload_mb=_int_env("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
            model_dir=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
            batch=os.environ.get("SAGEMAKER_BATCH", "").strip().lower() in ("true", "1"),
        )

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024
