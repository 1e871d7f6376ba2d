"""The xgboost-hdfs algorithm on the real HDFS_v1 sample, without Docker."""
import gzip
import json

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from byoc.training import run
from xgboost_hdfs import Runtime, train
from xgboost_hdfs.logparse import LogFormatError, TemplateMatcher, count_events, numbered

SM_BUILTIN_SET = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
                  "objective": "binary:logistic", "num_round": 50}


@pytest.fixture(scope="module")
def raw_tree(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("raw")
    opt_ml.hdfs_raw(root)
    return root


def _copy_tree(src, dst, hyperparameters=None):
    import shutil
    shutil.copytree(src / "input", dst / "input")
    opt_ml.write_config(dst, hyperparameters)
    return dst


def test_every_real_line_matches_exactly_one_template(shared_data):
    matcher = TemplateMatcher()
    with gzip.open(shared_data / "hdfs" / "HDFS.log.gz", "rt") as logs:
        counts = count_events(numbered("HDFS.log.gz", logs), matcher)
    assert counts.lines == 165_563 and counts.unmatched_lines == 0
    labels = (shared_data / "hdfs" / "anomaly_label.csv").read_text().splitlines()[1:]
    assert list(counts.counts) == [row.split(",")[0] for row in labels]  # label rows follow first appearance


def test_multi_block_lines_count_for_each_block_and_unknown_lines_are_kept():
    lines = [
        "081109 214043 19 INFO dfs.FSNamesystem: BLOCK* ask 10.251.126.5:50010 to delete  blk_1 blk_-2 blk_1",
        "081109 214043 19 INFO dfs.DataNode: something nobody templated for blk_1",
    ]
    counts = count_events(numbered("body", lines), TemplateMatcher())
    names = counts.feature_names
    assert counts.counts["blk_1"][names.index("E30")] == 1  # once per line, even when named twice
    assert counts.counts["blk_-2"][names.index("E30")] == 1
    assert counts.counts["blk_1"][names.index("unmatched")] == 1 and counts.unmatched_lines == 1


def test_a_line_without_block_id_is_an_error_naming_file_and_line():
    with pytest.raises(LogFormatError, match="HDFS.log, line 2: no block id"):
        count_events(numbered("HDFS.log", ["081109 203530 147 INFO x: Receiving block blk_1 src: /a dest: /b",
                                           "081109 203530 147 INFO x: hello"]), TemplateMatcher())


def test_default_training_is_strong_on_a_chronological_split(raw_tree, tmp_path):
    root = _copy_tree(raw_tree, tmp_path)
    assert run(train, root) == 0
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["dataset"] == "validation" and evaluation["rows"] == 805  # the later half: see below
    assert evaluation["f1"] > 0.9 and evaluation["recall"] > 0.9 and evaluation["precision"] > 0.9
    assert set(evaluation) >= {"accuracy", "false_positive_rate", "roc_auc", "confusion_matrix", "threshold",
                               "threshold_probability", "at_probability_0.5", "threshold_chosen_on"}
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    assert metadata["feature_names"][:2] == ["E1", "E2"] and metadata["feature_names"][-1] == "unmatched"
    assert metadata["feature_source"] == "raw-logs" and len(metadata["templates"]) == 30
    assert (root / "model" / "xgboost-model").read_bytes()[:1] == b"{"  # UBJSON, not pickle


def test_sagemaker_builtin_hyperparameters_run_as_written(raw_tree, tmp_path, capsys):
    root = _copy_tree(raw_tree, tmp_path, SM_BUILTIN_SET)
    assert run(train, root) == 0
    out = capsys.readouterr().out
    assert "[49]\ttrain-logloss:" in out and "\tvalidation-auc:" in out
    assert "[50]" not in out


def test_unknown_hyperparameter_fails_before_training_and_writes_no_model(raw_tree, tmp_path):
    root = _copy_tree(raw_tree, tmp_path, {"num_rounds": 10})
    assert run(train, root) == 1
    assert "num_rounds" in (root / "output" / "failure").read_text()
    assert not (root / "model" / "xgboost-model").exists()


def test_feature_csv_channels_train_too(shared_data, tmp_path):
    opt_ml.hdfs_csv(tmp_path)
    assert run(train, tmp_path) == 0
    assert json.loads((tmp_path / "output" / "data" / "evaluation.json").read_text())["f1"] > 0.9


def test_runtime_serves_a_sagemaker_builtin_model_without_metadata(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.random((200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0.5).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(features, labels), 10)
    booster.save_model(str(tmp_path / "xgboost-model.json"))
    (tmp_path / "xgboost-model.json").rename(tmp_path / "xgboost-model")
    runtime = Runtime(tmp_path)
    body, kind = runtime.invoke(b"0.9,0.1,0.1,0.1\n0.1,0.1,0.1,0.1\n", "text/csv", None)
    scores = [float(s) for s in body.split()]
    assert kind == "text/csv" and scores[0] > 0.5 > scores[1]
    assert runtime.feature_names == ["f0", "f1", "f2", "f3"]


def _feature_rows(tmp_path):
    opt_ml.hdfs_csv(tmp_path / "csv")
    read = lambda name: np.loadtxt(tmp_path / "csv" / "input" / "data" / name / "features.csv", delimiter=",")
    return read("train"), read("validation")


def test_parquet_channels_train(shared_data, tmp_path):
    import fastparquet
    import pandas as pd

    train_rows, validation_rows = _feature_rows(tmp_path)
    root = tmp_path / "parquet"
    for name, rows in (("train", train_rows), ("validation", validation_rows)):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        frame = pd.DataFrame(rows[:, 1:], columns=[f"E{i}" for i in range(1, 31)] + ["unmatched"])
        frame.insert(0, "label", rows[:, 0].astype(int))
        fastparquet.write(str(folder / "part-0.parquet"), frame)
    opt_ml.write_config(root)
    assert run(train, root) == 0
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    assert metadata["feature_source"] == "parquet" and metadata["feature_names"][0] == "E1"
    assert json.loads((root / "output" / "data" / "evaluation.json").read_text())["f1"] > 0.9


def test_libsvm_channels_train(shared_data, tmp_path):
    train_rows, validation_rows = _feature_rows(tmp_path)
    root = tmp_path / "libsvm"
    for name, rows in (("train", train_rows), ("validation", validation_rows)):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        lines = (f"{int(r[0])} " + " ".join(f"{i}:{v:g}" for i, v in enumerate(r[1:]) if v) for r in rows)
        (folder / "data.libsvm").write_text("\n".join(lines) + "\n")
    opt_ml.write_config(root, content_types={"train": "text/libsvm", "validation": "text/libsvm"})
    assert run(train, root) == 0
    assert json.loads((root / "model" / "metadata.json").read_text())["feature_source"] == "text/libsvm"
    assert json.loads((root / "output" / "data" / "evaluation.json").read_text())["f1"] > 0.85


def _env_of_host(root, rank, hosts=2, distribution=None):
    from byoc.training import TrainingEnv

    names = [f"algo-{i + 1}" for i in range(hosts)]
    channel = {"S3DistributionType": distribution} if distribution else {}
    return TrainingEnv(root=root, input_data_config={"train": dict(channel)},
                       resource_config={"current_host": names[rank], "hosts": names})


def test_hosts_split_a_replicated_raw_log_channel_into_disjoint_whole_blocks(raw_tree):
    from xgboost_hdfs.data import load_channel

    whole = load_channel(_env_of_host(raw_tree, 0, hosts=1), "train", TemplateMatcher())
    parts = [load_channel(_env_of_host(raw_tree, rank), "train", TemplateMatcher()) for rank in (0, 1)]
    assert sum(len(p.labels) for p in parts) == len(whole.labels)
    assert all(0.4 < len(p.labels) / len(whole.labels) < 0.6 for p in parts)
    # Every block keeps all its lines: the parts' rows are rows of the whole, none lost or cut.
    rows = {tuple(r) for r in whole.features}
    assert all(tuple(r) in rows for p in parts for r in p.features)
    assert sum(p.labels.sum() for p in parts) == whole.labels.sum()


def test_hosts_split_replicated_feature_files_and_keep_sharded_ones_whole(shared_data, tmp_path):
    from xgboost_hdfs.data import load_channel

    opt_ml.hdfs_csv(tmp_path)
    whole = load_channel(_env_of_host(tmp_path, 0, hosts=1), "train", TemplateMatcher())
    halves = [load_channel(_env_of_host(tmp_path, rank), "train", TemplateMatcher()) for rank in (0, 1)]
    assert np.array_equal(np.concatenate([h.features for h in halves]), whole.features)  # contiguous rows
    sharded = load_channel(_env_of_host(tmp_path, 1, distribution="ShardedByS3Key"), "train", TemplateMatcher())
    assert np.array_equal(sharded.features, whole.features)  # ShardedByS3Key: the host's files are its part


def test_sharded_raw_logs_take_labels_from_a_labels_channel(raw_tree, tmp_path):
    import shutil
    from xgboost_hdfs.data import load_channel

    shutil.copytree(raw_tree / "input" / "data" / "train", tmp_path / "input" / "data" / "train")
    (tmp_path / "input" / "data" / "labels").mkdir()
    (tmp_path / "input" / "data" / "train" / "anomaly_label.csv").rename(
        tmp_path / "input" / "data" / "labels" / "anomaly_label.csv")
    dataset = load_channel(_env_of_host(tmp_path, 0, hosts=1, distribution="ShardedByS3Key"), "train", TemplateMatcher())
    assert dataset.source == "raw-logs" and dataset.labels.sum() > 0


def test_direct_predictor_gives_inplace_predict_s_floats(tmp_path):
    from xgboost_hdfs.predictor import DensePredictor

    rng = np.random.default_rng(1)
    features = rng.random((300, 5)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4},
                        xgb.DMatrix(features, (features[:, 0] + features[:, 3] > 1).astype(np.float32)), 30)
    predictor = DensePredictor(booster)
    assert predictor.direct
    for rows in (1, 1000, 7, 1):  # one proxy, reused across shapes
        matrix = rng.random((rows, 5)).astype(np.float32)
        matrix[rng.random((rows, 5)) < 0.2] = np.nan  # missing values
        np.testing.assert_array_equal(predictor(matrix), booster.inplace_predict(matrix))
    column = np.asfortranarray(rng.random((4, 5)).astype(np.float32))  # not C-ordered: copied first
    np.testing.assert_array_equal(predictor(column), booster.inplace_predict(column))


def test_a_gblinear_model_serves_through_a_dmatrix(tmp_path):
    """gblinear has no in-place prediction in XGBoost: the runtime predicts it through a DMatrix."""
    rng = np.random.default_rng(2)
    features = rng.random((300, 4)).astype(np.float32)
    booster = xgb.train({"booster": "gblinear", "objective": "reg:squarederror"},
                        xgb.DMatrix(features, features[:, 0] * 2 + features[:, 1]), 20)
    booster.save_model(tmp_path / "xgboost-model")
    runtime = Runtime(tmp_path)
    body, kind = runtime.invoke(b"0.1,0.2,0.3,0.4\n0.9,0.8,0.7,0.6\n", "text/csv", "text/csv")
    expected = booster.predict(xgb.DMatrix(np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6]], dtype=np.float32)))
    np.testing.assert_allclose([float(v) for v in body.split()], expected, rtol=1e-6)


def test_the_threshold_is_scored_on_validation_rows_it_never_saw(raw_tree, tmp_path):
    """Issue #12: the threshold was chosen and scored on the same validation rows."""
    from xgboost_hdfs.data import load_channel
    from xgboost_hdfs.evaluation import evaluate

    root = _copy_tree(raw_tree, tmp_path, SM_BUILTIN_SET)
    assert run(train, root) == 0
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    validation = load_channel(_env_of_host(root, 0, hosts=1), "validation", TemplateMatcher())
    booster = xgb.Booster(model_file=bytearray((root / "model" / "xgboost-model").read_bytes()))
    scores = booster.inplace_predict(validation.features)
    earlier, later = slice(0, 805), slice(805, None)  # rows in order of first appearance: chronological
    threshold = metadata["threshold"]
    assert evaluation["threshold"] == threshold and 0.05 <= threshold <= 0.95
    assert evaluation["threshold_chosen_on"]["rows"] == 805
    assert evaluation["threshold_chosen_on"]["f1"] == evaluate(validation.labels[earlier], scores[earlier], threshold)["f1"]
    expected = evaluate(validation.labels[later], scores[later], threshold)
    assert {k: evaluation[k] for k in expected} == expected
    at_half = evaluate(validation.labels[later], scores[later], 0.5)
    assert evaluation["at_probability_0.5"]["f1"] == at_half["f1"]
    assert evaluation["at_probability_0.5"]["confusion_matrix"] == at_half["confusion_matrix"]


def test_a_given_threshold_is_scored_on_every_validation_row(raw_tree, tmp_path):
    root = _copy_tree(raw_tree, tmp_path, {"num_round": 20, "threshold": 0.3})
    assert run(train, root) == 0
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["rows"] == 1610 and evaluation["threshold"] == 0.3 and evaluation["threshold_chosen_on"] is None


def test_f1_from_cumulative_counts_equals_f1_counted_row_by_row():
    from xgboost_hdfs.evaluation import best_f1_threshold, evaluate, f1_at

    rng = np.random.default_rng(3)
    labels = (rng.random(3000) < 0.1).astype(np.float32)
    scores = np.round(np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1), 2).astype(np.float32)  # many ties
    candidates = np.concatenate([np.unique(scores), np.linspace(-0.1, 1.1, 97)])
    counted = np.array([evaluate(labels, scores, t, auc=False)["f1"] for t in candidates])
    np.testing.assert_allclose(f1_at(labels, scores, candidates), counted, rtol=0, atol=1e-12)
    best = best_f1_threshold(labels, scores, 0.5, 0.05, 0.95)
    assert 0.05 <= best <= 0.95
    assert np.isclose(f1_at(labels, scores, [best])[0], counted[(candidates >= 0.05) & (candidates <= 0.95)].max())


def test_the_chosen_threshold_stays_in_range_and_ties_go_to_one_half():
    from xgboost_hdfs.evaluation import best_f1_threshold

    labels = np.array([0, 0, 0, 1, 1], dtype=np.float32)
    separable = np.array([0.001, 0.002, 0.003, 0.998, 0.999])
    assert best_f1_threshold(labels, separable, 0.5, 0.05, 0.95) == 0.5  # every threshold between is perfect
    low = np.array([0.001, 0.002, 0.04, 0.06, 0.07])  # perfect only between 0.04 and 0.06: the range's end
    assert best_f1_threshold(labels, low, 0.5, 0.05, 0.95) == 0.05
    lower = np.array([0.001, 0.002, 0.003, 0.010, 0.011])  # perfect only below 0.01: nothing in range beats 0.5
    assert best_f1_threshold(labels, lower, 0.5, 0.05, 0.95) == 0.5
    assert best_f1_threshold(labels[:0], low[:0], 0.5, 0.05, 0.95) == 0.5  # no rows: the default


def test_logitraw_threshold_is_a_probability_stored_as_the_margin_serving_compares(shared_data, tmp_path):
    """Issue #12: the threshold was validated as a probability but compared with raw margins."""
    opt_ml.hdfs_csv(tmp_path)
    opt_ml.write_config(tmp_path, {"objective": "binary:logitraw", "threshold": 0.3, "num_round": 20})
    assert run(train, tmp_path) == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["threshold"] == pytest.approx(np.log(0.3 / 0.7)) and metadata["threshold_probability"] == pytest.approx(0.3)
    evaluation = json.loads((tmp_path / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["threshold"] == metadata["threshold"]
    rows = np.loadtxt(tmp_path / "input" / "data" / "validation" / "features.csv", delimiter=",")[:, 1:]
    runtime = Runtime(tmp_path / "model")
    answer = json.loads(runtime.invoke("\n".join(",".join(f"{v:g}" for v in r) for r in rows).encode(), "text/csv",
                                       "application/json")[0])
    margins = np.array([p["score"] for p in answer["predictions"]])
    labels = np.array([p["predicted_label"] for p in answer["predictions"]])
    assert margins.min() < 0 < margins.max()  # margins, not probabilities
    assert np.array_equal(labels, (1 / (1 + np.exp(-margins)) >= 0.3).astype(int))
    assert labels.sum() == evaluation["confusion_matrix"]["tp"] + evaluation["confusion_matrix"]["fp"]

    opt_ml.write_config(tmp_path, {"objective": "binary:logitraw", "threshold": 1})
    assert run(train, tmp_path) == 1
    assert "threshold=1: with objective=binary:logitraw the threshold is a probability strictly between 0 and 1" in \
        (tmp_path / "output" / "failure").read_text()
