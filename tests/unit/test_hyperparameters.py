import pytest

from byoc.errors import HyperparameterError
from byoc.hyperparameters import Param, parse, unwrap

SPEC = [
    Param("num_round", int, 10, low=1),
    Param("eta", float, 0.3, low=0.0, high=1.0),
    Param("objective", str, "binary:logistic", choices=("binary:logistic", "reg:logistic")),
    Param("flag", bool, False),
]


def test_plain_and_json_encoded_strings_give_the_same_values():
    plain = parse({"num_round": "5", "eta": "0.2", "objective": "reg:logistic", "flag": "true"}, SPEC)
    encoded = parse({"num_round": '"5"', "eta": '"0.2"', "objective": '"reg:logistic"', "flag": '"true"'}, SPEC)
    assert plain == encoded == {"num_round": 5, "eta": 0.2, "objective": "reg:logistic", "flag": True}


def test_defaults_fill_what_is_not_given():
    assert parse({}, SPEC) == {"num_round": 10, "eta": 0.3, "objective": "binary:logistic", "flag": False}


def test_sagemaker_and_tuning_keys_are_ignored():
    values = parse({"sagemaker_program": "x.py", "_tuning_objective_metric": "validation:auc"}, SPEC)
    assert values["num_round"] == 10


@pytest.mark.parametrize("raw, words", [
    ({"num_rounds": "5"}, ["unknown hyperparameter", "num_rounds", "num_round"]),
    ({"num_round": "0"}, ["num_round", "out of range", "[1, inf]"]),
    ({"num_round": "2.5"}, ["num_round", "whole number"]),
    ({"eta": "fast"}, ["eta", "float"]),
    ({"eta": "1.5"}, ["eta", "[0.0, 1.0]"]),
    ({"objective": "multi:softmax"}, ["objective", "binary:logistic, reg:logistic"]),
    ({"flag": "maybe"}, ["flag", "boolean"]),
])
def test_invalid_values_name_the_parameter_and_what_is_allowed(raw, words):
    with pytest.raises(HyperparameterError) as error:
        parse(raw, SPEC)
    for word in words:
        assert word in str(error.value)


def test_unwrap():
    assert unwrap('"5"') == "5"
    assert unwrap("5") == "5"
    assert unwrap(5) == "5"
    assert unwrap(True) == "true"
    assert unwrap("binary:logistic") == "binary:logistic"
