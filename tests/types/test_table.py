"""Table: input forms, cell conversion, snapshots and errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from kohakuboard.types import Media, Table, encode_media


def test_rows_with_columns() -> None:
    table = Table([[1, "a", 0.5], [2, "b", None]], columns=["id", "name", "score"])
    assert table.to_payload() == {
        "columns": ["id", "name", "score"],
        "rows": [[1, "a", 0.5], [2, "b", None]],
    }
    assert len(table) == 2


def test_rows_without_columns_get_default_names() -> None:
    table = Table([(1, 2), (3, 4)])
    assert table.to_payload()["columns"] == ["col_0", "col_1"]


def test_dicts_union_keys_in_first_seen_order() -> None:
    table = Table([{"b": 1, "a": 2}, {"a": 3, "c": "x"}])
    assert table.to_payload() == {
        "columns": ["b", "a", "c"],
        "rows": [[1, 2, None], [None, 3, "x"]],
    }


def test_dicts_with_explicit_columns_order_and_extra_keys() -> None:
    table = Table([{"a": 1, "b": 2}], columns=["b", "a", "z"])
    assert table.to_payload()["rows"] == [[2, 1, None]]
    with pytest.raises(ValueError, match=r"keys \['q'\] that are not in columns"):
        Table([{"a": 1, "q": 2}], columns=["a"])


def test_dataframe() -> None:
    frame = pd.DataFrame({"step": [1, 2], "loss": [0.5, float("nan")], "tag": ["x", "y"]})
    payload = Table(frame).to_payload()
    assert payload["columns"] == ["step", "loss", "tag"]
    assert payload["rows"][0] == [1, 0.5, "x"]
    assert payload["rows"][1][0] == 2 and math.isnan(payload["rows"][1][1])
    assert payload["rows"][1][2] == "y"
    assert all(
        type(cell) in (int, float, str, type(None)) for row in payload["rows"] for cell in row
    )
    with pytest.raises(ValueError, match="omit columns="):
        Table(frame, columns=["a", "b", "c"])


def test_numpy_scalars_and_special_floats_become_python() -> None:
    row = [np.int64(3), np.float32(1.5), np.bool_(True), np.str_("s"), float("inf"), True]
    cells = Table([row]).to_payload()["rows"][0]
    assert cells == [3, 1.5, True, "s", float("inf"), True]
    assert [type(cell) for cell in cells] == [int, float, bool, str, float, bool]


def test_two_dimensional_numpy_array() -> None:
    table = Table(np.arange(6).reshape(2, 3), columns=["a", "b", "c"])
    assert table.to_payload()["rows"] == [[0, 1, 2], [3, 4, 5]]


def test_media_cells_become_nested_payloads() -> None:
    pixels = np.zeros((2, 3), dtype=np.uint8)
    table = Table([["img", Media(pixels, caption="zero")]], columns=["name", "image"])
    cell = table.to_payload()["rows"][0][1]
    assert set(cell) == {"__media__"}
    encoded = encode_media(cell["__media__"])
    assert (encoded.kind, encoded.width, encoded.height, encoded.caption) == ("image", 3, 2, "zero")
    pickle.dumps(table.to_payload())


def test_snapshot_ignores_later_mutation() -> None:
    rows = [[1, 2], [3, 4]]
    table = Table(rows)
    rows[0][0] = 99
    rows.append([5, 6])
    assert table.to_payload()["rows"] == [[1, 2], [3, 4]]


def test_bad_cell_names_row_column_and_type() -> None:
    with pytest.raises(TypeError, match=r"row 1, column 'b' is list \[4\]"):
        Table([[1, 2], [3, [4]]], columns=["a", "b"])
    with pytest.raises(TypeError, match="row 0, column 'col_0' is .*complex"):
        Table([[np.complex64(1)]])
    with pytest.raises(TypeError, match="accepted: None, bool, int, float, str"):
        Table([{"x": object()}])


def test_ragged_rows_raise() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells but there are 2 columns"):
        Table([[1, 2], [3]])
    with pytest.raises(ValueError, match="row 0 has 2 cells but there are 3 columns"):
        Table([[1, 2]], columns=["a", "b", "c"])


@pytest.mark.parametrize(
    ("data", "columns", "error", "pattern"),
    [
        ("text", None, TypeError, "accepted: a list of lists"),
        ([1, 2], None, TypeError, "row 0 is"),
        ([[1, 2]], ["a", "a"], ValueError, r"unique; repeated: \['a'\]"),
        ([[1]], "a", TypeError, "list of str"),
        ([[1]], [1], TypeError, "column names must be str"),
        (np.zeros(3), None, ValueError, "2-D numpy array"),
    ],
)
def test_bad_tables(data: object, columns: object, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Table(data, columns=columns)  # type: ignore[arg-type]


def test_empty_table() -> None:
    assert Table([], columns=["a"]).to_payload() == {"columns": ["a"], "rows": []}
    assert Table([]).to_payload() == {"columns": [], "rows": []}
