"""Inputs the fuzz test (tests/container/test_fuzz.py) found answered with a 500, now 400s that name
the problem: huge JSON integers, deeply nested JSON, .npy headers that promise more than the body
holds or carry non-numeric dtypes, infinite values. Bodies with no rows are refused by the runtime
(tests/unit/test_request_bodies.py)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

import support  # noqa: F401 - puts core/ on sys.path
from byoc import codecs
from byoc.errors import RequestError


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _huge_npy_header() -> bytes:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    header += b" " * (118 - len(header)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 16


@pytest.mark.parametrize("content_type, body, words", [
    ("application/json", json.dumps([[10 ** 400, 1]]), ["row 1, column 1", "too large"]),
    ("application/json", "[" * 100000 + "]" * 100000, ["nested too deeply"]),
    ("application/jsonlines", "[1, 2]\n" + "[" * 100000 + "]" * 100000, ["line 2", "nested too deeply"]),
    ("application/x-npy", _huge_npy_header(), ["(100000000000,)", "800000000000 bytes", "holds 16"]),
    ("application/x-npy", _npy(np.array([[1 + 2j, 1]])), ["complex128", "not numeric"]),
    ("application/x-npy", _npy(np.zeros(2, dtype="datetime64[s]")), ["datetime64", "not numeric"]),
    ("application/x-npy", _npy(np.zeros(2, dtype=[("a", "f4")])), ["not numeric"]),
    ("application/x-npy", b"\x93NUMPY\x03\x00" + b"\0" * 20, ["version 3.0"]),
    # a header length that cuts the header dict short: numpy's literal parser raises TokenError
    ("application/x-npy", b"\x93NUMPY\x01\x00\x01\x00{'descr': '<f4', 'fortran_order': False, 'shape': (), }"
     + b" " * 62 + b"\n\0\0\0\0", ["unreadable .npy body"]),
    ("text/csv", "1,inf\n", ["row 1, column 2", "infinite"]),
    ("text/csv", "1,2\n3,1e39\n", ["row 2, column 2", "float32 range"]),
    ("application/json", "[[1, -Infinity]]", ["row 1, column 2", "infinite"]),
    ("application/json", "[[1e308, 1]]", ["row 1, column 1", "float32 range"]),
    ("text/libsvm", "0 1:1e39", ["row 1, column 2"]),
    ("text/libsvm", "0 \u00b9:0", ["row 1", "is not index:value"]),  # a digit to isdigit(), not to int()
    ("text/libsvm", "0 99999999999:1", ["too large"]),
    ("application/x-npy", _npy(np.array([[1.0, 1e300]])), ["row 1, column 2"]),
])
def test_refused_with_a_message_that_names_the_problem(content_type, body, words):
    with pytest.raises(RequestError) as error:
        codecs.decode(body.encode() if isinstance(body, str) else body, content_type)
    assert error.value.status == 400
    for word in words:
        assert word in str(error.value)


def test_values_near_the_float32_limit_and_missing_values_still_pass():
    matrix = codecs.decode(b"3.4e38,nan,\n-3.4e38,1,2\n", "text/csv")
    assert matrix.shape == (2, 3) and np.isnan(matrix[0, 1]) and np.isnan(matrix[0, 2])
    assert codecs.decode(_npy(np.array([[True, 2], [3, 4]])), "application/x-npy").tolist() == [[1, 2], [3, 4]]
