"""Model files as every SageMaker built-in XGBoost version wrote them, loaded into XGBoost 3.2.

- 0.90-1 ... 1.2-x: `xgboost-model` is a pickled Booster. No general unpickling: a restricted
  unpickler admits only the classes such a pickle names (xgboost.core.Booster, whose state holds
  the model's bytes under 'handle', and builtins.bytearray) and refuses anything else by name.
- 1.3-1 ... 1.7-1: XGBoost's legacy binary format, which 3.2 no longer reads; so do the bytes in
  those pickles' 'handle'. An older XGBoost (2.1.4, in LEGACY_XGBOOST) converts them to UBJSON
  in a child process once at load (legacy_convert.py): two XGBoost libraries never share a process.
- later versions and ours: JSON or UBJSON, which 3.2 reads itself.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import xgboost as xgb

log = logging.getLogger(__name__)
LEGACY_XGBOOST = os.environ.get("BYOC_LEGACY_XGBOOST", "/opt/xgboost-legacy")
CONVERTER = Path(__file__).with_name("legacy_convert.py")
CONVERT_TIMEOUT = 300  # seconds; a 100 MB model converts in a few


class ArtifactError(ValueError):
    """A model file this image cannot load; the message names the file and the problem."""


class BoosterState:
    """Stands in for xgboost.core.Booster while unpickling: keeps the state handed to __setstate__."""

    def __setstate__(self, state):
        self.state = state


def _bytearray(data=b"", *encoding):
    """builtins.bytearray as pickles of bytes objects call it; never bytearray(n) (n zero bytes)."""
    if not isinstance(data, (bytes, str)):
        raise pickle.UnpicklingError(f"bytearray of {type(data).__name__} in a model pickle")
    return bytearray(data, *encoding) if isinstance(data, str) else bytearray(data)


class BoosterUnpickler(pickle.Unpickler):
    """Admits only what a pickled XGBoost Booster names; any other class is refused, unloaded."""

    ALLOWED = {("xgboost.core", "Booster"): BoosterState, ("builtins", "bytearray"): _bytearray}

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, and only an XGBoost Booster (xgboost.core.Booster) is "
                "loaded from a pickle") from None


def booster_state(data: bytes, path: Path) -> dict:
    """The state of the Booster pickled in `data`: 'handle' (the model's bytes) and its attributes."""
    try:
        loaded = BoosterUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a loadable pickled XGBoost Booster: {exc}") from None
    state = getattr(loaded, "state", None) if isinstance(loaded, BoosterState) else None
    if not isinstance(state, dict) or not isinstance(state.get("handle"), (bytes, bytearray)) or not state["handle"]:
        raise ArtifactError(f"{path}: a pickle of {type(loaded).__name__}, not of an XGBoost Booster with its model")
    return state


def to_ubjson(model: bytes, path: Path) -> bytes:
    """The legacy binary model (or a pickled Booster's serialised handle) as UBJSON, by XGBoost 2.1.4."""
    if not Path(LEGACY_XGBOOST, "xgboost").is_dir():
        raise ArtifactError(f"{path} is in XGBoost's legacy binary format, which needs the converter's "
                            f"XGBoost in {LEGACY_XGBOOST} (missing); re-save it as .json or .ubj")
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(CONVERTER), LEGACY_XGBOOST], input=model,
                              capture_output=True, timeout=CONVERT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{path}: converting the legacy binary model took over {CONVERT_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {done.returncode}"]
        raise ArtifactError(f"{path}: not a model XGBoost can read (JSON, UBJSON, the legacy binary "
                            f"format or a pickled Booster): {lines[-1]}")
    log.info("%s: the legacy binary format, converted to UBJSON by XGBoost 2.1.4 in %.1f s",
             path, time.monotonic() - start)
    return done.stdout


def load_booster(path: Path) -> xgb.Booster:
    """A Booster from any built-in version's model file, or ours (JSON, UBJSON)."""
    data = path.read_bytes()
    if not data:
        raise ArtifactError(f"{path} is empty")
    if data[:1] == b"\x80":  # pickle protocol 2 and later (Python 3 writes 3 or 4)
        # The state's other keys (feature_names f0..fN as DMatrix named CSV columns, best_iteration)
        # were Python attributes: predictions use every tree, as that version's predict did.
        data = bytes(booster_state(data, path)["handle"])
        log.info("%s: a pickled Booster (SageMaker built-in XGBoost 0.90-1 ... 1.2-x)", path)
    if data[:1] != b"{":  # JSON and UBJSON open an object; everything else is the legacy format
        data = to_ubjson(data, path)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise ArtifactError(f"{path}: XGBoost cannot read this model: {str(exc).splitlines()[0]}") from None
    return booster
