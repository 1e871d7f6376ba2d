"""xgboost_hdfs.artifacts: the restricted unpickler for built-in XGBoost's pickled Boosters, and
which bytes go where. The old versions' real files are served in tests/container/test_builtin_artifacts.py."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import xgboost as xgb

import support  # noqa: F401 (import paths)
from xgboost_hdfs import artifacts
from xgboost_hdfs.artifacts import ArtifactError, BoosterState, booster_state, load_booster


def _pickled_booster(state: dict, protocol: int = 3) -> bytes:
    """A pickle as `pickle.dump(booster)` of xgboost 0.90-1.2 writes it: NEWOBJ of
    xgboost.core.Booster, then BUILD with its __getstate__ dict (bytearray via builtins.bytearray)."""
    body = pickle.dumps(state, protocol=protocol)
    assert body[:2] == bytes([0x80, protocol]) and body[-1:] == b"."
    return bytes([0x80, protocol]) + b"cxgboost.core\nBooster\n)\x81" + body[2:-1] + b"b."


def _state(handle=bytearray(b"CONFIG-{}binf...")) -> dict:
    return {"feature_names": ["f0", "f1"], "feature_types": None, "handle": handle, "booster": "gbtree",
            "best_iteration": 3, "best_ntree_limit": 4}


@pytest.mark.parametrize("protocol", [3, 4])  # Python 3.0-3.7's default, then 3.8's
def test_a_pickled_booster_gives_its_state(protocol, tmp_path):
    data = _pickled_booster(_state(), protocol)
    state = booster_state(data, tmp_path / "xgboost-model")
    assert state == _state() and isinstance(state["handle"], bytearray)


def test_protocol_2_pickles_name_python_2_helpers_and_are_refused_naming_them(tmp_path):
    """Python 3 never wrote built-in artifacts with protocol 2; its helpers stay out."""
    with pytest.raises(ArtifactError, match=r"names __builtin__\.bytearray, and only an XGBoost Booster"):
        booster_state(_pickled_booster(_state(), 2), tmp_path / "xgboost-model")


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_another_class_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "xgboost-model"
    path.write_bytes(pickle.dumps(_RunsACommand(marker)))
    with pytest.raises(ArtifactError) as refused:
        load_booster(path)
    assert str(path) in str(refused.value) and "names posix.system" in str(refused.value)
    assert "only an XGBoost Booster (xgboost.core.Booster)" in str(refused.value)
    assert not marker.exists()
    # The same call hidden inside a Booster's state is refused too.
    inner = pickle.dumps({"handle": _RunsACommand(marker)}, protocol=3)
    path.write_bytes(b"\x80\x03cxgboost.core\nBooster\n)\x81" + inner[2:-1] + b"b.")
    with pytest.raises(ArtifactError, match="names posix.system"):
        load_booster(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj, problem", [
    ({"handle": b"x"}, "a pickle of dict, not of an XGBoost Booster"),
    ([1, 2], "a pickle of list, not of an XGBoost Booster"),
])
def test_pickles_of_plain_data_are_not_boosters(obj, problem, tmp_path):
    with pytest.raises(ArtifactError, match=problem):
        booster_state(pickle.dumps(obj), tmp_path / "m")


def test_a_booster_pickle_without_model_bytes_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="not of an XGBoost Booster with its model"):
        booster_state(_pickled_booster({"handle": None}), tmp_path / "m")
    with pytest.raises(ArtifactError, match="not of an XGBoost Booster with its model"):
        booster_state(_pickled_booster({"feature_names": None}), tmp_path / "m")


def test_bytearray_only_of_bytes_never_of_a_size(tmp_path):
    """bytearray(10**12) would allocate a terabyte: the stand-in takes bytes (and str, encoding) only."""
    crafted = b"\x80\x03cxgboost.core\nBooster\n)\x81}X\x06\x00\x00\x00handlecbuiltins\nbytearray\n" \
              b"\x8a\x05\x00\x10\xa5\xd4\xe8\x85Rsb."
    with pytest.raises(ArtifactError, match="bytearray of int"):
        booster_state(crafted, tmp_path / "m")
    assert artifacts._bytearray(b"ab") == bytearray(b"ab") and artifacts._bytearray("ab", "latin-1") == bytearray(b"ab")


def test_truncated_and_empty_files_say_so(tmp_path):
    path = tmp_path / "xgboost-model"
    path.write_bytes(_pickled_booster(_state())[:40])
    with pytest.raises(ArtifactError, match=f"{path}: not a loadable pickled XGBoost Booster"):
        load_booster(path)
    path.write_bytes(b"")
    with pytest.raises(ArtifactError, match="is empty"):
        load_booster(path)


def test_json_and_ubjson_load_directly_and_the_legacy_format_needs_the_converter(tmp_path, monkeypatch):
    rows = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(rows, rows[:, 0] > 0.5), 5)
    expected = booster.predict(xgb.DMatrix(rows))
    for suffix in ("json", "ubj"):
        booster.save_model(str(tmp_path / f"m.{suffix}"))
        named = tmp_path / f"xgboost-model-{suffix}"  # the built-in's name: no extension to go by
        named.write_bytes((tmp_path / f"m.{suffix}").read_bytes())
        assert np.array_equal(load_booster(named).predict(xgb.DMatrix(rows)), expected)
    monkeypatch.setattr(artifacts, "LEGACY_XGBOOST", str(tmp_path / "nowhere"))
    legacy = tmp_path / "xgboost-model"
    legacy.write_bytes(b"binf\x00\x00\x00\x3f" + bytes(200))
    with pytest.raises(ArtifactError, match=f"{legacy} is in XGBoost's legacy binary format, which needs"):
        load_booster(legacy)


def test_the_stand_in_is_no_booster():
    assert not issubclass(BoosterState, xgb.Booster)
    assert artifacts.BoosterUnpickler.ALLOWED == {("xgboost.core", "Booster"): BoosterState,
                                                  ("builtins", "bytearray"): artifacts._bytearray}
