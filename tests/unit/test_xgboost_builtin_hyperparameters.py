"""xgboost-hdfs takes SageMaker's built-in XGBoost hyperparameters as that container validates them,
and trains every objective family on real data (the PRTG CPU sensor), without Docker."""
import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import opt_ml
from byoc.errors import HyperparameterError
from byoc.hyperparameters import parse
from byoc.training import run
from xgboost_hdfs import train
from xgboost_hdfs.evaluation import concordance, ranking
from xgboost_hdfs.objectives import OBJECTIVES, classification_metric
from xgboost_hdfs.train import HYPERPARAMETERS, check, xgboost_params

# One valid value for every hyperparameter the built-in's validation lists (and the extras here),
# with what it needs beside it.
VALID = [
    ({"num_round": "10"}, {}), ({"early_stopping_rounds": "5"}, {}), ({"booster": "gblinear"}, {}),
    ({"booster": "dart", "rate_drop": "0.1", "one_drop": "1", "skip_drop": "0.5", "sample_type": "weighted",
      "normalize_type": "forest"}, {}),
    ({"verbosity": "0"}, {}), ({"nthread": "1"}, {}), ({"eta": "0.1"}, {}), ({"learning_rate": "0.1"}, {}),
    ({"gamma": "4"}, {}), ({"min_split_loss": "4"}, {}), ({"max_depth": "0", "grow_policy": "lossguide"}, {}),
    ({"min_child_weight": "6"}, {}), ({"max_delta_step": "1"}, {}), ({"subsample": "0.7"}, {}),
    ({"colsample_bytree": "0.5", "colsample_bylevel": "0.5", "colsample_bynode": "0.5"}, {}),
    ({"lambda": "2", "alpha": "1"}, {}), ({"reg_lambda": "2", "reg_alpha": "1"}, {}),
    ({"tree_method": "exact"}, {}), ({"tree_method": "approx", "sketch_eps": "0.03"}, {}),
    ({"tree_method": "gpu_hist"}, {"tree_method": "hist"}), ({"tree_method": "auto"}, {}),
    ({"scale_pos_weight": "3"}, {}), ({"updater": "grow_colmaker,prune"}, {}),
    ({"updater": "distcol"}, {"updater": "grow_colmaker"}), ({"updater": "grow_skmaker"}, {"updater": "grow_histmaker"}),
    ({"process_type": "update", "updater": "refresh", "refresh_leaf": "1"}, {}),
    ({"booster": "gblinear", "updater": "coord_descent", "lambda_bias": "0.1"}, {}),
    ({"dsplit": "row"}, {}), ({"max_leaves": "8"}, {}), ({"max_bin": "64"}, {}),
    ({"predictor": "cpu_predictor"}, {}), ({"monotone_constraints": "(1,0,-1)"}, {}),
    ({"interaction_constraints": "[[0,1],[2]]"}, {}), ({"tweedie_variance_power": "1.5", "objective": "reg:tweedie"}, {}),
    ({"base_score": "0.3"}, {}), ({"seed": "42"}, {}), ({"num_parallel_tree": "3"}, {}),
    ({"save_model_on_termination": "true"}, {}), ({"aft_loss_distribution": "logistic",
      "aft_loss_distribution_scale": "1.2", "objective": "survival:aft"}, {}),
    ({"deterministic_histogram": "true"}, {}), ({"single_precision_histogram": "true"}, {}),
    ({"sampling_method": "uniform"}, {}), ({"prob_buffer_row": "1.5"}, {}), ({"use_dask_gpu_training": "false"}, {}),
    ({"device": "cuda"}, {"device": "cpu"}), ({"max_cat_to_onehot": "4"}, {}), ({"max_cached_hist_node": "128"}, {}),
    ({"quantile_alpha": "0.9", "objective": "reg:quantileerror"}, {}),
    ({"huber_slope": "2", "objective": "reg:pseudohubererror"}, {}),
    ({"_kfold": "3", "_num_cv_round": "2"}, {}), ({"_tuning_objective_metric": "validation:f1"}, {}), ({"csv_weights": "1"}, {}),
    ({"eval_metric": "error@0.7,ndcg@5,map,aucpr,logloss,accuracy,balanced_accuracy,f1,f1_binary,precision,recall"}, {}),
    ({"objective": "multi:softprob", "num_class": "3", "eval_metric": "mlogloss,merror,f1_macro,precision_micro,recall_macro"}, {}),
    ({"objective": "reg:squarederror", "eval_metric": "rmse,mae,mse,r2,rmsle,mape,mphe"}, {}),
    ({"threshold": "0.3"}, {}),
    *(({"objective": o, **({"num_class": "4"} if o.startswith("multi:") else {}),
        **({"quantile_alpha": "0.5"} if o == "reg:quantileerror" else {})}, {}) for o in OBJECTIVES),
]


@pytest.mark.parametrize("raw, expected", VALID, ids=lambda v: ",".join(v) if v else "")
def test_every_builtin_hyperparameter_is_accepted(raw, expected):
    hp = parse(raw, HYPERPARAMETERS)
    check(hp)
    params = xgboost_params(hp, positives=10, rows=100)
    for name, value in expected.items():
        assert params[name] == value
    assert not {"sketch_eps", "dsplit", "predictor", "lambda_bias", "single_precision_histogram",
                "deterministic_histogram", "prob_buffer_row", "save_model_on_termination", "_kfold"} & set(params)
    if raw.get("objective") == "reg:linear":
        assert params["objective"] == "reg:squarederror"


def test_every_param_of_the_table_appears_in_the_accepted_cases():
    named = {name for raw, _ in VALID for name in raw}
    aliases = {a for p in HYPERPARAMETERS for a in p.aliases}
    assert {p.name for p in HYPERPARAMETERS} - named <= {"collective_timeout", "checkpoint_frequency"}
    assert aliases <= named


@pytest.mark.parametrize("raw, words", [
    ({"subsample": "0"}, ["subsample", "(0.0, 1.0]"]),
    ({"colsample_bytree": "1.5"}, ["colsample_bytree", "(0.0, 1.0]"]),
    ({"eta": "-0.1"}, ["eta", "[0.0, 1.0]"]),
    ({"learning_rate": "2"}, ["learning_rate", "[0.0, 1.0]"]),
    ({"tweedie_variance_power": "2"}, ["tweedie_variance_power", "(1.0, 2.0)"]),
    ({"sketch_eps": "1"}, ["sketch_eps", "(0.0, 1.0)"]),
    ({"num_class": "1"}, ["num_class", "[2, inf]"]),
    ({"_kfold": "1"}, ["_kfold", "[2, inf]"]),
    ({"_num_cv_round": "0"}, ["_num_cv_round"]),
    ({"refresh_leaf": "2"}, ["refresh_leaf", "[0, 1]"]),
    ({"one_drop": "3"}, ["one_drop"]),
    ({"seed": str(2**31)}, ["seed", "out of range"]),
    ({"scale_pos_weight": "0"}, ["scale_pos_weight", "> 0"]),
    ({"objective": "reg:nonsense"}, ["objective", "reg:squarederror", "multi:softprob", "rank:ndcg"]),
    ({"tree_method": "gpu_approx"}, ["tree_method", "gpu_hist"]),
    ({"booster": "gbforest"}, ["booster", "gblinear"]),
    ({"save_model_on_termination": "yes"}, ["save_model_on_termination", "true, false"]),
    ({"eval_metric": "rmse,accuracyy"}, ["eval_metric", "accuracyy"]),
    ({"eval_metric": "auc@3"}, ["eval_metric", "only error, ndcg, map, pre take @"]),
    ({"eval_metric": "error@high"}, ["eval_metric", "high"]),
    ({"_tuning_objective_metric": "validation:speed"}, ["_tuning_objective_metric", "validation:<metric>"]),
    ({"updater": "grow_colmaker,grow_fast"}, ["updater", "grow_fast"]),
    ({"monotone_constraints": "(1,2)"}, ["monotone_constraints", "-1, 0 and 1"]),
    ({"interaction_constraints": "[0,1]"}, ["interaction_constraints", "[[0,1],[2,3]]"]),
    ({"quantile_alpha": "1"}, ["quantile_alpha", "(0.0, 1.0)"]),
    ({"eta": "0.1", "learning_rate": "0.2"}, ["eta", "learning_rate", "same parameter"]),
])
def test_out_of_range_values_name_the_parameter(raw, words):
    with pytest.raises(HyperparameterError) as error:
        parse(raw, HYPERPARAMETERS)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("raw, words", [
    ({"objective": "multi:softmax"}, ["multi:softmax", "needs num_class"]),
    ({"num_class": "3"}, ["num_class=3", "only for multi:softmax"]),
    ({"objective": "reg:quantileerror"}, ["quantile_alpha"]),
    ({"objective": "reg:squarederror", "eval_metric": "auc"}, ["auc", "binary and rank"]),
    ({"eval_metric": "aft-nloglik"}, ["aft-nloglik", "survival:aft"]),
    ({"objective": "multi:softprob", "num_class": "3", "eval_metric": "precision"}, ["precision", "precision_macro"]),
    ({"tree_method": "approx", "monotone_constraints": "(1,0)"}, ["monotone_constraints", "exact or hist"]),
    ({"tree_method": "auto", "interaction_constraints": "[[0,1]]"}, ["interaction_constraints", "approx"]),
    ({"booster": "gblinear", "updater": "grow_colmaker"}, ["gblinear", "shotgun, coord_descent"]),
    ({"process_type": "update", "updater": "grow_histmaker"}, ["process_type=update", "refresh and prune"]),
    ({"updater": "grow_colmaker,grow_histmaker"}, ["2 tree grow plugins", "choose one"]),
    ({"updater": "shotgun"}, ["shotgun", "gblinear"]),
    ({"base_score": "1.5"}, ["base_score=1.5", "strictly between 0 and 1"]),
    ({"objective": "reg:squarederror", "threshold": "0.4"}, ["threshold", "binary objectives only"]),
])
def test_parameters_that_do_not_fit_together_name_both(raw, words):
    with pytest.raises(HyperparameterError) as error:
        check(parse(raw, HYPERPARAMETERS))
    for word in words:
        assert word in str(error.value)


def test_container_metrics_match_their_definitions():
    labels = np.array([0, 0, 1, 1, 2, 2.0])
    predicted = np.array([0, 1, 1, 1, 2, 0.0])
    assert classification_metric("accuracy", labels, predicted) == pytest.approx(4 / 6)
    # per class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    assert classification_metric("precision_macro", labels, predicted) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert classification_metric("recall_macro", labels, predicted) == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert classification_metric("balanced_accuracy", labels, predicted) == pytest.approx(2 / 3)
    assert classification_metric("precision_micro", labels, predicted) == pytest.approx(4 / 6)
    f1 = [2 * p * r / (p + r) for p, r in ((0.5, 0.5), (2 / 3, 1), (1, 0.5))]
    assert classification_metric("f1", labels, predicted) == pytest.approx(np.mean(f1))
    binary, guess = np.array([0, 1, 1, 0.0]), np.array([1, 1, 0, 0.0])
    assert classification_metric("precision", binary, guess) == classification_metric("recall", binary, guess) == 0.5
    assert ranking(np.array([3, 2, 0.0]), np.array([0.9, 0.5, 0.1]))["ndcg"] == pytest.approx(1.0)
    assert ranking(np.array([0, 1.0]), np.array([0.9, 0.1]))["map"] == pytest.approx(0.5)
    assert concordance(np.array([1, 2, 3.0]), np.ones(3, bool), np.array([3, 2, 1.0])) == 1.0


# Training jobs on the real PRTG CPU sensor.

@pytest.fixture(scope="module")
def prtg(shared_data):
    return opt_ml.prtg_load_table()


def _job(root, table, hyperparameters, label=None, fmt="parquet"):
    table = table.copy()
    if label is not None:
        table["label"] = label(table["label"])
    return opt_ml.prtg_load(root, hyperparameters, table, fmt)


def _outputs(root):
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    booster = xgb.Booster(model_file=str(root / "model" / "xgboost-model"))
    return evaluation, metadata, booster


def test_regression_with_the_tuning_metric_driving_early_stopping(prtg, tmp_path, capsys):
    root = _job(tmp_path, prtg, {"objective": "reg:squarederror", "num_round": 200, "early_stopping_rounds": 5,
                                 "eval_metric": "mae,r2", "_tuning_objective_metric": "validation:rmse",
                                 "learning_rate": 0.3, "sketch_eps": 0.03})
    assert run(train, root) == 0, (root / "output" / "failure").read_text()
    out = capsys.readouterr().out
    assert "\tvalidation-mae:" in out and "\tvalidation-r2:" in out and "\tvalidation-rmse:" in out
    evaluation, metadata, booster = _outputs(root)
    assert metadata["objective"] == "reg:squarederror" and "threshold" not in metadata
    assert {"rmse", "mae", "r2"} <= set(evaluation) and evaluation["r2"] > 0.5
    assert f"validation-rmse: {evaluation['rmse']:.6g}" in out and "validation-f1" not in out
    # early stopping watched rmse, the tuning metric, not r2 (the last eval_metric, which grows)
    rounds = [float(line.split("validation-rmse:")[1].split()[0]) for line in out.splitlines() if line.startswith("[")]
    assert evaluation["best_iteration"] == int(np.argmin(rounds)) and len(rounds) < 200
    validation = pd.read_parquet(root / "input" / "data" / "validation" / "part.parquet")
    predicted = booster.inplace_predict(validation.drop(columns="label").to_numpy())
    assert np.sqrt(np.mean((predicted - validation["label"].to_numpy()) ** 2)) == pytest.approx(evaluation["rmse"], rel=1e-4)


def test_multiclass_softprob_from_csv(prtg, tmp_path, capsys):
    root = _job(tmp_path, prtg, {"objective": "multi:softprob", "num_class": 3, "num_round": 20,
                                 "eval_metric": "mlogloss,merror,accuracy,f1"},
                label=lambda y: np.digitize(y, [3, 6]).astype("float32"), fmt="csv")
    assert run(train, root) == 0, (root / "output" / "failure").read_text()
    out = capsys.readouterr().out
    assert "[19]\ttrain-mlogloss:" in out and "\tvalidation-accuracy:" in out and "\tvalidation-f1:" in out
    evaluation, metadata, booster = _outputs(root)
    assert metadata["objective"] == "multi:softprob" and metadata["num_class"] == 3
    assert evaluation["accuracy"] > 0.6 and evaluation["merror"] == pytest.approx(1 - evaluation["accuracy"])
    last = [line for line in out.splitlines() if line.startswith("[19]")][0]
    assert float(last.split("validation-mlogloss:")[1].split()[0]) == pytest.approx(evaluation["mlogloss"], abs=1e-4)
    rows = np.loadtxt(root / "input" / "data" / "validation" / "part.csv", delimiter=",")
    assert booster.inplace_predict(rows[:, 1:]).shape == (len(rows), 3)


@pytest.mark.parametrize("objective, label, extra, keys", [
    ("count:poisson", None, {}, {"rmse", "mae", "poisson_deviance"}),
    ("reg:tweedie", None, {"tweedie_variance_power": 1.3}, {"rmse", "r2"}),
    ("reg:quantileerror", None, {"quantile_alpha": 0.9}, {"quantile_loss"}),
    ("rank:ndcg", lambda y: np.digitize(y, [3, 6]).astype("float32"), {}, {"ndcg", "map"}),
    ("survival:cox", lambda y: y + 1, {}, {"c_index"}),
    ("survival:aft", lambda y: y + 1, {"aft_loss_distribution": "logistic"}, {"c_index", "rmse"}),
    ("reg:linear", None, {"booster": "gblinear", "updater": "shotgun"}, {"rmse"}),
])
def test_other_families_train_and_report_what_fits(prtg, tmp_path, capsys, objective, label, extra, keys):
    root = _job(tmp_path, prtg.iloc[:2000], {"objective": objective, "num_round": 10, **extra}, label=label)
    assert run(train, root) == 0, (root / "output" / "failure").read_text()
    evaluation, metadata, booster = _outputs(root)
    assert keys <= set(evaluation) and all(np.isfinite(evaluation[k]) for k in keys)
    assert "f1" not in evaluation and "threshold" not in metadata
    assert "[9]\ttrain-" in capsys.readouterr().out


def test_labels_the_objective_cannot_take_name_file_and_row(prtg, tmp_path):
    root = _job(tmp_path, prtg.iloc[:500], {"objective": "multi:softmax", "num_class": 3},
                label=lambda y: pd.Series(np.digitize(y, [3, 6]), dtype="float32").where(y.index != 6, 7.0), fmt="csv")
    assert run(train, root) == 1
    failure = (root / "output" / "failure").read_text()
    assert "part.csv: row 7" in failure and "the label is 7.0 but objective multi:softmax with num_class=3 needs a class 0 .. 2" in failure


def test_kfold_writes_fold_models_predictions_and_mean_lines(prtg, tmp_path, capsys):
    root = _job(tmp_path, prtg.iloc[:1500], {"objective": "reg:squarederror", "num_round": 8, "_kfold": 3,
                                             "_num_cv_round": 2, "eval_metric": "rmse"})
    assert run(train, root) == 0, (root / "output" / "failure").read_text()
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    means = [line for line in out if line.startswith("[8]")]
    assert len(means) == 3 and "\tvalidation-rmse:" in means[-1]  # each repetition, then over both
    assert out[-1] == means[-1]  # the final model's rounds do not print after it: tuning reads the CV mean
    assert sorted(p.name for p in (root / "model").glob("xgboost-model-*")) == [f"xgboost-model-{i}" for i in range(6)]
    predictions = np.loadtxt(root / "output" / "data" / "predictions.csv", delimiter=",")
    assert predictions.shape == (1500, 2)
    cv = json.loads((root / "output" / "data" / "cross_validation.json").read_text())
    assert cv["mean"]["validation-rmse"] == pytest.approx(float(means[-1].split("validation-rmse:")[1]), abs=1e-5)
    assert (root / "model" / "xgboost-model").exists()


def test_readme_table_lists_every_hyperparameter():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Hyperparameters\n"):readme.index("### Output\n")]
    from byoc.hyperparameters import table

    assert table(HYPERPARAMETERS) in section  # regenerate it with byoc.hyperparameters.table


def _libsvm_with_groups(folder, table, rows_per_group=50):
    folder.mkdir(parents=True, exist_ok=True)
    relevance = np.digitize(table["label"], [3, 6])
    lines = [" ".join([str(int(r)), f"qid:{i // rows_per_group}",
                       *(f"{j}:{v:g}" for j, v in enumerate(row))])
             for i, (r, row) in enumerate(zip(relevance, table.drop(columns="label").to_numpy()))]
    (folder / "rank.libsvm").write_text("\n".join(lines) + "\n")


def test_ranking_reads_libsvm_query_groups(prtg, tmp_path, capsys):
    _libsvm_with_groups(tmp_path / "input" / "data" / "train", prtg.iloc[:1500])
    _libsvm_with_groups(tmp_path / "input" / "data" / "validation", prtg.iloc[1500:2000])
    opt_ml.write_config(tmp_path, {"objective": "rank:ndcg", "num_round": 10, "eval_metric": "ndcg@5,ndcg"},
                        content_types={"train": "text/libsvm", "validation": "text/libsvm"})
    assert run(train, tmp_path) == 0, (tmp_path / "output" / "failure").read_text()
    assert "\tvalidation-ndcg@5:" in capsys.readouterr().out
    evaluation, metadata, booster = _outputs(tmp_path)
    assert evaluation["groups"] == 10 and 0 < evaluation["ndcg"] <= 1 and metadata["objective"] == "rank:ndcg"


@pytest.mark.parametrize("text, words", [
    ("1 qid:1 0:0.5 1:2\n0 0:0.1 1:1\n", ["rank.libsvm, line 2", "no qid here but one on line 1"]),
    ("1 qid:x 0:0.5\n", ["rank.libsvm, line 1", "'qid:x'", "whole number"]),
    ("1 qid:2 0:0.5\n0 qid:1 0:0.1\n", ["qid go down at row 2", "sort the rows by qid"]),
    ("1 0:0.5 qid:2\n", ["rank.libsvm, line 1", "right after the label"]),
    ("2 qid:1 0:0.5\n0 qid:1 0:0.1\n", ["XGBoost refused this training", "map can only be used with binary labels",
                                        "eval_metric map"]),
])
def test_bad_query_groups_fail_naming_file_and_line(tmp_path, text, words):
    """And what XGBoost itself refuses (map needs 0/1 relevance) is the user's error, exit 1, not ours."""
    folder = tmp_path / "input" / "data" / "train"
    folder.mkdir(parents=True)
    (folder / "rank.libsvm").write_text(text)
    opt_ml.write_config(tmp_path, {"objective": "rank:ndcg", "eval_metric": "map"}, content_types={"train": "text/libsvm"},
                        channels=("train",))
    assert run(train, tmp_path) == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert all(word in failure for word in words), failure
