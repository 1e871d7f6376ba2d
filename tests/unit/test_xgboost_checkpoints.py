"""Checkpoints without Docker: atomic writes, choosing the latest valid checkpoint, the SIGTERM stop,
and resuming to the same model as an uninterrupted run, on the real HDFS features."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from byoc.errors import UserError
from byoc.training import Stopped, TrainingEnv, run, stop_signal
from xgboost_hdfs import checkpoints
from xgboost_hdfs.distributed import Cluster

PARAMS = {"objective": "binary:logistic", "tree_method": "hist", "seed": 0, "eta": 0.1, "min_child_weight": 0.1,
          "scale_pos_weight": 28.0, "nthread": 2, "eval_metric": ["auc", "logloss"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("csv")
    opt_ml.hdfs_csv(root)
    train, valid = (np.loadtxt(root / "input" / "data" / name / "features.csv", delimiter=",")
                    for name in ("train", "validation"))
    return Data(train[:, 1:], train[:, 0], valid[:, 1:], valid[:, 0])


class Data:
    """Train and validation matrices, and their identity as the checkpoint fingerprint records it."""

    def __init__(self, train_x, train_y, valid_x, valid_y):
        self.dtrain, self.dvalid = xgb.DMatrix(train_x, train_y), xgb.DMatrix(valid_x, valid_y)
        names = [f"f{i}" for i in range(train_x.shape[1])]
        self.identity = {"train": checkpoints.data_identity(train_x, train_y, names),
                         "validation": checkpoints.data_identity(valid_x, valid_y, names)}
        self.arrays = train_x, train_y, valid_x, valid_y

    def __getitem__(self, index):  # data[0], data[1]: the train and validation DMatrix
        return (self.dtrain, self.dvalid)[index]


@pytest.fixture
def cluster(tmp_path):
    return Cluster(TrainingEnv(root=tmp_path), timeout=60)


def _train(data, cluster, folder, num_round, early_stopping_rounds=None, stop_at=None, params=PARAMS):
    dtrain, dvalid = data
    callbacks = [_SigtermAt(stop_at)] if stop_at else []
    return checkpoints.train(params, dtrain, num_round, [(dtrain, "train"), (dvalid, "validation")], folder=folder,
                             frequency=10, early_stopping_rounds=early_stopping_rounds, cluster=cluster,
                             callbacks=callbacks, data=data.identity)


class _SigtermAt(xgb.callback.TrainingCallback):
    """A real SIGTERM to this process once the model holds `rounds` rounds."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def after_iteration(self, model, epoch, evals_log) -> bool:
        if model.num_boosted_rounds() == self.rounds:
            os.kill(os.getpid(), signal.SIGTERM)
        return False


def _interrupted(data, cluster, folder, num_round, stop_at, early_stopping_rounds=None, params=PARAMS) -> Stopped:
    with stop_signal.installed(), pytest.raises(Stopped) as stopped:
        _train(data, cluster, folder, num_round, early_stopping_rounds, stop_at=stop_at, params=params)
    return stopped.value


def _small_booster(data, rounds: int) -> xgb.Booster:
    return xgb.train({"tree_method": "hist", "nthread": 1}, data[0], rounds)


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "xgboost-checkpoint.10.ubj"
    checkpoints.write_atomic(target, b"first")
    checkpoints.write_atomic(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_latest_skips_corrupt_truncated_and_misnamed_checkpoints(tmp_path, data):
    for rounds in (10, 20, 30):
        checkpoints.save(tmp_path, _small_booster(data, rounds), "{}")
    good = (tmp_path / "xgboost-checkpoint.30.ubj").read_bytes()
    (tmp_path / "xgboost-checkpoint.40.ubj").write_bytes(good[: len(good) // 2])  # cut off mid-write
    (tmp_path / "xgboost-checkpoint.50.ubj").write_bytes(b"not a model")
    (tmp_path / "xgboost-checkpoint.60.ubj").write_bytes(good)  # holds 30 rounds, not 60
    (tmp_path / ".xgboost-checkpoint.70.ubj.tmp").write_bytes(good)  # a temporary: never a checkpoint
    (tmp_path / "xgboost-checkpoint.80").write_bytes(good)  # SageMaker's built-in naming: not ours
    path, raw = checkpoints.latest(tmp_path)
    assert path.name == "xgboost-checkpoint.30.ubj" and raw == good
    assert checkpoints.latest(tmp_path / "absent") is None


def test_save_keeps_the_latest_few_and_clears_stale_temporaries(tmp_path, data):
    (tmp_path / ".xgboost-checkpoint.5.ubj.tmp").write_bytes(b"left by a killed process")
    booster = _small_booster(data, 1)
    for _ in range(5):
        checkpoints.save(tmp_path, booster, '{"eta": 0.1}')
        booster.update(data[0], booster.num_boosted_rounds())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"xgboost-checkpoint.{n}.ubj" for n in (3, 4, 5)]
    saved = xgb.Booster(model_file=str(tmp_path / "xgboost-checkpoint.5.ubj"))
    assert saved.attr(checkpoints.PARAMS_ATTR) == '{"eta": 0.1}'
    assert booster.attr(checkpoints.PARAMS_ATTR) is None  # bookkeeping stays out of the trained model


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_ends_with_the_same_model(tmp_path, data, cluster):
    reference = _train(data, cluster, None, 200)
    stopped = _interrupted(data, cluster, tmp_path, 200, stop_at=57)
    assert str(stopped).startswith("stopped by SIGTERM at round 57 of 200; checkpoint xgboost-checkpoint.57.ubj saved")
    assert stopped.exit_code == 143
    assert [n for n, _ in checkpoints.listed(tmp_path)] == [57, 50, 40]
    resumed = _train(data, cluster, tmp_path, 200)
    assert resumed.num_boosted_rounds() == 200
    assert np.array_equal(resumed.predict(data[1]), reference.predict(data[1]))
    assert resumed.save_raw("ubj") == reference.save_raw("ubj")
    assert [n for n, _ in checkpoints.listed(tmp_path)] == [200, 190, 180]


@pytest.mark.parametrize("after_best", [-20, 3])  # stopped before the best round, or between it and the stop
def test_early_stopping_state_survives_the_resume(tmp_path, data, cluster, after_best):
    reference = _train(data, cluster, None, 400, early_stopping_rounds=10)
    best, rounds = reference.best_iteration, reference.num_boosted_rounds()
    assert 20 < best and rounds == best + 11 < 400  # early stopping ended it: the case this test needs
    _interrupted(data, cluster, tmp_path, 400, stop_at=best + 1 + after_best, early_stopping_rounds=10)
    resumed = _train(data, cluster, tmp_path, 400, early_stopping_rounds=10)
    assert (resumed.num_boosted_rounds(), resumed.best_iteration, resumed.best_score) == \
        (rounds, best, reference.best_score)
    assert resumed.save_raw("ubj") == reference.save_raw("ubj")
    # The last checkpoint is the stopped run's end: starting again trains nothing more.
    again = _train(data, cluster, tmp_path, 400, early_stopping_rounds=10)
    assert again.save_raw("ubj") == reference.save_raw("ubj")


def test_a_checkpoint_of_other_hyperparameters_is_refused_by_name(tmp_path, data, cluster):
    _interrupted(data, cluster, tmp_path, 100, stop_at=20)
    with pytest.raises(UserError, match=r"checkpoint xgboost-checkpoint.20.ubj belongs to another training: other "
                                        r"hyperparameters \(eta: 0.1 in the checkpoint, 0.2 now\)\. "):
        _train(data, cluster, tmp_path, 100, params={**PARAMS, "eta": 0.2})


def test_a_checkpoint_of_other_data_is_refused_naming_the_channel(tmp_path, data, cluster):
    """Issue #12: the same hyperparameters on other data (1,610 rows, labels flipped) resumed the
    first job's checkpoint, trained 0 rounds and shipped the first job's model."""
    _interrupted(data, cluster, tmp_path, 20, stop_at=20)  # stopped as it ended: the checkpoint holds every round
    _, _, valid_x, valid_y = data.arrays
    other = Data(valid_x, 1 - valid_y, valid_x, valid_y)
    with pytest.raises(UserError, match=r"checkpoint xgboost-checkpoint.20.ubj belongs to another training: other "
                                        r"train data \(1,610 rows x 31 now, 6,440 rows x 31 in the checkpoint\)\. "):
        _train(other, cluster, tmp_path, 20)
    flipped = Data(data.arrays[0], 1 - data.arrays[1], valid_x, valid_y)
    with pytest.raises(UserError, match=r"other train data \(6,440 rows x 31 now, 6,440 rows x 31 in the checkpoint, "
                                        r"same shape but other values\)"):
        _train(flipped, cluster, tmp_path, 20)


def test_a_checkpoint_without_a_data_record_is_refused(tmp_path, data, cluster):
    checkpoints.save(tmp_path, _small_booster(data, 10), json.dumps({"eta": 0.1}))  # as older versions wrote it
    with pytest.raises(UserError, match=r"belongs to another training: no record of its data"):
        _train(data, cluster, tmp_path, 100)


def test_a_finished_jobs_folder_is_never_resumed(tmp_path, data, cluster):
    _train(data, cluster, tmp_path, 20)
    checkpoints.mark_finished(tmp_path, 20)  # what train.py does once the model is saved
    with pytest.raises(UserError, match=rf"the checkpoint folder {tmp_path} holds the checkpoints of a job that "
                                        r"finished \(job-finished.json: 20 rounds, model saved at 20"):
        _train(data, cluster, tmp_path, 20)


def test_the_data_digest_covers_values_labels_names_and_sparse_layout():
    rng = np.random.default_rng(0)
    features, labels = rng.random((50, 4), dtype=np.float32), (rng.random(50) < 0.3).astype(np.float32)
    names = ["a", "b", "c", "d"]
    digest = checkpoints.data_identity(features, labels, names)["sha256"]
    assert digest == checkpoints.data_identity(features.copy(order="F"), labels, names)["sha256"]  # layout is not data
    changed = features.copy()
    changed[49, 3] += 1e-6
    assert len({digest, checkpoints.data_identity(changed, labels, names)["sha256"],
                checkpoints.data_identity(features, 1 - labels, names)["sha256"],
                checkpoints.data_identity(features, labels, ["a", "b", "d", "c"])["sha256"]}) == 4
    import scipy.sparse
    sparse = scipy.sparse.csr_matrix(np.where(features > 0.5, features, 0))
    assert checkpoints.data_identity(sparse, labels, names)["rows"] == 50


SAMPLED = {**PARAMS, "subsample": 0.7, "colsample_bytree": 0.8, "colsample_bylevel": 0.9, "colsample_bynode": 0.9}


@pytest.mark.parametrize("params, rounds", [(SAMPLED, 80), ({**PARAMS, "booster": "dart", "rate_drop": 0.1, "subsample": 0.7}, 30)],
                         ids=["subsample-colsample", "dart"])  # dart predicts every tree each round: fewer rounds
def test_resume_with_sampling_ends_with_the_uninterrupted_model(tmp_path, data, cluster, params, rounds):
    reference = _train(data, cluster, None, rounds, params=params)
    assert reference.save_raw("ubj") == _train(data, cluster, None, rounds, params=params).save_raw("ubj")
    stop_at = rounds - 3
    stopped = _interrupted(data, cluster, tmp_path, rounds, stop_at=stop_at, params=params)
    assert str(stopped).startswith(f"stopped by SIGTERM at round {stop_at} of {rounds}; checkpoint "
                                   f"xgboost-checkpoint.{stop_at - 7}.ubj is in ")
    assert str(stopped).endswith("the 7 rounds since are trained again)")
    # none between multiples of the frequency
    assert [n for n, _ in checkpoints.listed(tmp_path)] == list(range(stop_at - 7, 0, -10))[:3]
    resumed = _train(data, cluster, tmp_path, rounds, params=params)
    assert resumed.save_raw("ubj") == reference.save_raw("ubj")


def test_sampling_before_the_first_checkpoint_says_none_is_saved(tmp_path, data, cluster):
    stopped = _interrupted(data, cluster, tmp_path, 80, stop_at=7, params=SAMPLED)
    assert str(stopped) == ("stopped by SIGTERM at round 7 of 80; no checkpoint yet: with row or column sampling "
                            "the first one comes at round 10")
    assert checkpoints.listed(tmp_path) == []


def test_checkpoint_dir_comes_from_checkpointconfig(tmp_path):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    assert TrainingEnv.load(tmp_path).checkpoint_dir is None
    (config / "checkpointconfig.json").write_text(json.dumps({"S3Uri": "s3://bucket/ckpt"}))
    assert TrainingEnv.load(tmp_path).checkpoint_dir == tmp_path / "checkpoints"  # /opt/ml/checkpoints
    (config / "checkpointconfig.json").write_text(json.dumps({"S3Uri": "s3://b/c", "LocalPath": "/data/ckpt"}))
    assert str(TrainingEnv.load(tmp_path).checkpoint_dir) == "/data/ckpt"
    (config / "checkpointconfig.json").write_text("[]")
    with pytest.raises(UserError, match="checkpointconfig.json: expected a JSON object"):
        TrainingEnv.load(tmp_path)


def test_sigterm_outside_training_fails_the_job_with_a_reason_and_restores_handlers(tmp_path):
    opt_ml.write_config(tmp_path, channels=())
    before = signal.getsignal(signal.SIGTERM)

    def train(env):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the training function")

    assert run(train, tmp_path) == 143
    assert (tmp_path / "output" / "failure").read_text() == \
        "stopped by SIGTERM before training finished; no model was written\n"
    assert signal.getsignal(signal.SIGTERM) is before
