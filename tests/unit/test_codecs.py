import io
import json

import numpy as np
import pytest

from byoc import codecs
from byoc.errors import NotAcceptable, RequestError, UnsupportedMediaType

NAMES = ["a", "b", "c"]


def test_csv_rows_parse_to_float32():
    m = codecs.decode(b"1,2,3\n4,5.5,6\n", "text/csv; charset=utf-8", NAMES)
    assert m.dtype == np.float32 and m.tolist() == [[1, 2, 3], [4, 5.5, 6]]


def test_csv_empty_cells_are_missing_values():
    m = codecs.decode(b"1,,3\n", "text/csv", NAMES)
    assert np.isnan(m[0, 1]) and m[0, 2] == 3


@pytest.mark.parametrize("body, message", [
    (b"1,2\n", "row 1 has 2 columns but the model expects 3"),
    (b"1,2,3\n1,2,3,4\n", "row 2 has 4 columns but the model expects 3"),
    (b"1,2,3\n4,x,6\n", "row 2, column 2: 'x' is not a number"),
    (b"a,b,c\n1,2,3\n", "row 1, column 1: 'a' is not a number"),
    (b"", "empty request body"),
    (b"\n\n", "empty request body"),
])
def test_csv_errors_name_row_and_column(body, message):
    with pytest.raises(RequestError, match=message):
        codecs.decode(body, "text/csv", NAMES)


def test_csv_without_model_width_checks_rows_against_the_first():
    with pytest.raises(RequestError, match="row 2 has 1 columns but row 1 has 2"):
        codecs.decode(b"1,2\n3\n", "text/csv")


@pytest.mark.parametrize("cell", ["7", " 2 ", "1e3", "-1.5E-2", "nan", "NA", "null", "", "1_0", ".5", "\t7"])
def test_csv_fast_path_and_cell_path_read_the_same_values(cell):
    # decode_csv parses with numpy.loadtxt and falls back to converting cell by cell: either way
    # a cell means what float() (or a missing value) makes of it.
    m = codecs.decode_csv(f"1,{cell},3\n".encode(), NAMES)
    np.testing.assert_array_equal(m, np.array([[1, codecs._cell(cell, 1, 2), 3]], dtype=np.float32))


@pytest.mark.parametrize("cell", ["7", " 2 ", "1e3", "-1.5E-2", "nan", "NA", "null", "", "1_0", ".5", "\t7",
                                  "0.1", "3.4028235e38", "1e-46", "123456789.123456789"])
def test_csv_many_distinct_rows_read_the_same_values(cell):
    # Many distinct lines, each parsed once: the same values again.
    rows = 100
    m = codecs.decode("".join(f"{i},{cell},3\n" for i in range(rows)).encode(), "text/csv", NAMES)
    expected = np.array([[i, codecs._cell(cell, 1, 2), 3] for i in range(rows)], dtype=np.float32)
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("rows", [2, 100])
@pytest.mark.parametrize("cell", ["0x10", "1d3", "1 2", "#1", "+", "1e", "'3'", '"3"', "1,5"])
def test_csv_cells_float_refuses_are_refused(cell, rows):
    body = "".join(f"{i},2,3\n" for i in range(rows - 1)) + f"1,{cell},3\n"
    with pytest.raises(RequestError, match=f"row {rows}(, column 2: .* is not a number| has 4 columns)"):
        codecs.decode(body.encode(), "text/csv", NAMES)


def test_csv_repeated_rows_are_parsed_once_and_expanded_in_order():
    body = b"1,2,3\n4,5,6\n1,2,3\n\n1,2,3\n4,5,6\n"
    rows = codecs.decode_csv_distinct(body, NAMES)
    assert rows.values.tolist() == [[1, 2, 3], [4, 5, 6]] and rows.inverse.tolist() == [0, 1, 0, 0, 1]
    assert codecs.decode(body, "text/csv", NAMES).tolist() == [[1, 2, 3], [4, 5, 6], [1, 2, 3], [1, 2, 3], [4, 5, 6]]


def test_csv_infinite_value_in_a_repeated_row_names_its_first_row():
    with pytest.raises(RequestError, match="row 2, column 3: infinite"):
        codecs.decode_csv_distinct(b"1,2,3\n1,2,inf\n1,2,3\n1,2,inf\n", NAMES)


@pytest.mark.parametrize("accept", list(codecs.ENCODERS))
def test_distinct_predictions_encode_as_every_row_would(accept):
    records = [{"score": 0.25, "predicted_label": 0}, {"score": 0.75, "predicted_label": 1}]
    inverse = np.array([1, 0, 0, 1, 1])
    expanded = [records[i] for i in inverse]
    assert codecs.encode(codecs.Distinct(records, inverse), accept) == codecs.encode(expanded, accept)


def test_csv_body_of_line_breaks_only_is_empty():
    with pytest.raises(RequestError, match="empty request body"):
        codecs.decode(b"\x1c\x1d", "text/csv")


@pytest.mark.parametrize("document", [
    {"instances": [[1, 2, 3]]},
    {"data": [[1, 2, 3]]},
    [[1, 2, 3]],
    [1, 2, 3],
    [{"a": 1, "b": 2, "c": 3}],
    {"instances": [{"c": 3, "a": 1, "b": 2}]},
])
def test_json_shapes(document):
    assert codecs.decode(json.dumps(document).encode(), "application/json", NAMES).tolist() == [[1, 2, 3]]


@pytest.mark.parametrize("document, message", [
    ({"rows": [[1, 2, 3]]}, '"instances" or "data"'),
    ({"instances": [[1, 2]]}, "row 1 has 2 columns"),
    ({"instances": [[1, 2, "x"]]}, "row 1, column 3: 'x' is not a number"),
    ({"instances": [[1, 2, True]]}, "row 1, column 3"),
    ([{"a": 1, "b": 2}], r"missing feature\(s\) \['c'\]"),
    ([{"a": 1, "b": 2, "c": 3, "d": 4}], r"unknown feature\(s\) \['d'\]"),
    ({"instances": []}, "non-empty list of rows"),
    ({"instances": ["abc"]}, "row 1 is str"),
])
def test_json_errors(document, message):
    with pytest.raises(RequestError, match=message):
        codecs.decode(json.dumps(document).encode(), "application/json", NAMES)


def test_unreadable_json():
    with pytest.raises(RequestError, match="unreadable JSON"):
        codecs.decode(b"{nope", "application/json", NAMES)


def test_jsonlines_rows_and_records():
    body = b'[1,2,3]\n{"a":4,"b":5,"c":6}\n{"instances":[7,8,9]}\n'
    assert codecs.decode(body, "application/jsonlines", NAMES).tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(RequestError, match="line 2: unreadable JSON"):
        codecs.decode(b"[1,2,3]\n[1,2\n", "application/jsonlines", NAMES)


def test_libsvm_is_zero_based_and_sparse():
    m = codecs.decode(b"1 0:1.5 2:3\n0:2\n", "text/libsvm", NAMES)
    assert m[0].tolist()[0] == 1.5 and np.isnan(m[0, 1]) and m[0, 2] == 3
    with pytest.raises(RequestError, match="feature index 7 is out of range"):
        codecs.decode(b"7:1\n", "text/libsvm", NAMES)
    with pytest.raises(RequestError, match="'x:1' is not index:value"):
        codecs.decode(b"1 x:1\n", "text/libsvm", NAMES)


def test_npy_without_pickle():
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, 2, 3]], dtype=np.float64))
    assert codecs.decode(buffer.getvalue(), "application/x-npy", NAMES).tolist() == [[1, 2, 3]]
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RequestError, match="unreadable .npy"):
        codecs.decode(buffer.getvalue(), "application/x-npy", NAMES)


def test_unsupported_content_type():
    with pytest.raises(UnsupportedMediaType):
        codecs.decode(b"x", "application/xml", NAMES)


@pytest.mark.parametrize("accept, content_type, expected", [
    (None, "text/csv", "text/csv"),
    ("*/*", "text/csv", "text/csv"),
    (None, "application/json", "application/json"),
    ("*/*", "application/jsonlines", "application/jsonlines"),
    (None, "text/libsvm", "application/json"),
    ("application/json", "text/csv", "application/json"),
    ("image/png, text/csv;q=0.5", "application/json", "text/csv"),
    ("text/csv;q=0.2, application/jsonlines", "application/json", "application/jsonlines"),
])
def test_accept_negotiation(accept, content_type, expected):
    assert codecs.negotiate(accept, content_type) == expected


def test_unsupported_accept():
    with pytest.raises(NotAcceptable):
        codecs.negotiate("image/png", "text/csv")


def test_encoders():
    predictions = [{"score": 0.25, "predicted_label": 0}, {"score": 0.75, "predicted_label": 1}]
    assert codecs.encode(predictions, "text/csv") == b"0.25\n0.75\n"
    assert json.loads(codecs.encode(predictions, "application/json")) == {"predictions": predictions}
    assert [json.loads(l) for l in codecs.encode(predictions, "application/jsonlines").splitlines()] == predictions
    assert np.load(io.BytesIO(codecs.encode(predictions, "application/x-npy"))).tolist() == [0.25, 0.75]
