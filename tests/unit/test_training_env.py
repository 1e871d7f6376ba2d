import gzip
import json

import pytest

from byoc.errors import DataError, HyperparameterError
from byoc.training import TrainingEnv, open_text, run


def _tree(tmp_path, hyperparameters=None, input_config=None):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    if input_config is not None:
        (config / "inputdataconfig.json").write_text(json.dumps(input_config))
    return tmp_path


def test_channels_nested_hidden_and_gzip(tmp_path):
    root = _tree(tmp_path, input_config={"train": {"ContentType": "Text/CSV; charset=utf-8"}})
    train = root / "input" / "data" / "train"
    (train / "part" / "deeper").mkdir(parents=True)
    (train / "a.csv").write_text("1,2\n")
    (train / "part" / "deeper" / "b.csv.gz").write_bytes(gzip.compress(b"3,4\n"))
    (train / ".hidden.csv").write_text("x")
    (train / ".cache").mkdir()
    (train / ".cache" / "c.csv").write_text("x")
    env = TrainingEnv.load(root)
    files = env.channel_files("train")
    assert [f.name for f in files] == ["a.csv", "b.csv.gz"]
    assert env.content_type("train") == "text/csv"
    with open_text(files[1]) as handle:
        assert handle.read() == "3,4\n"


def test_channels_without_inputdataconfig_are_the_folders(tmp_path):
    root = _tree(tmp_path)
    (root / "input" / "data" / "train").mkdir(parents=True)
    (root / "input" / "data" / "validation").mkdir(parents=True)
    env = TrainingEnv.load(root)
    assert env.channels == ["train", "validation"] and env.content_type("train") is None
    assert env.hosts == ["algo-1"] and env.current_host == "algo-1"


def test_missing_and_empty_channels_are_named(tmp_path):
    env = TrainingEnv.load(_tree(tmp_path))
    with pytest.raises(DataError, match="no 'train' channel"):
        env.channel_files("train")
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="'train' channel .* has no files"):
        env.channel_files("train")
    assert env.channel_files("validation", required=False) == []


def test_user_error_writes_failure_file_and_exits_1(tmp_path):
    root = _tree(tmp_path)

    def train(env):
        raise HyperparameterError("hyperparameter eta='x' is invalid")

    assert run(train, root) == 1
    assert (root / "output" / "failure").read_text() == "HyperparameterError: hyperparameter eta='x' is invalid\n"


def test_invalid_config_json_names_file_and_line(tmp_path):
    root = _tree(tmp_path)
    (root / "input" / "config" / "hyperparameters.json").write_text('{\n "eta": 0.1,\n}')
    assert run(lambda env: None, root) == 1
    reason = (root / "output" / "failure").read_text()
    assert "hyperparameters.json: line 3" in reason


def test_unexpected_error_is_reported_as_internal(tmp_path):
    root = _tree(tmp_path)

    def train(env):
        raise KeyError("boom")

    assert run(train, root) == 2
    assert "internal error KeyError" in (root / "output" / "failure").read_text()
