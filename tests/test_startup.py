"""What each entry point imports: fixed costs stay low (figures: benchmarks/bench_startup.py).

Each check runs a fresh interpreter and lists the modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kohakuboard.storage import arrow_lean

HEAVY = ("numpy", "pyarrow", "pandas", "torch", "duckdb", "typer", "fastapi")


def loaded_after(code: str, *args: str) -> set[str]:
    """Top-level and kohakuboard modules loaded by a fresh interpreter running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True
    )
    names = json.loads(out.stdout.strip().splitlines()[-1])
    return {n for n in names if "." not in n or n.startswith("kohakuboard.")}


def test_import_kohakuboard_loads_none_of_its_modules() -> None:
    loaded = loaded_after("import kohakuboard")
    assert not [n for n in loaded if n.startswith("kohakuboard.")]
    assert not loaded & set(HEAVY)


def test_public_names_load_on_first_use() -> None:
    import kohakuboard

    assert kohakuboard.Board.__name__ == "Board"
    assert "Board" in dir(kohakuboard)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kohakuboard.Nope  # noqa: B018
    loaded = loaded_after("import kohakuboard\nassert kohakuboard.reader.open_board")
    assert "kohakuboard.reader" in loaded  # submodules still work as attributes


def test_the_training_process_never_imports_pyarrow_or_pandas(tmp_path: Path) -> None:
    loaded = loaded_after(
        "import sys\nfrom kohakuboard import Board\nb = Board(base_dir=sys.argv[1])\n"
        "b.log(x=1.0)\nb.finish(wait=True)",
        str(tmp_path),
    )
    assert not loaded & {"pyarrow", "pandas", "torch", "duckdb"}


def test_kobo_version_imports_typer_only() -> None:
    loaded = loaded_after(
        "import sys\nsys.argv = ['kobo', '--version']\nfrom kohakuboard.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert "typer" in loaded
    assert not loaded & {"numpy", "pyarrow", "pandas", "kohakuboard.reader"}


def test_a_first_read_of_scalars_does_not_import_pandas(tmp_path: Path) -> None:
    from kohakuboard import Board

    board = Board(base_dir=tmp_path)
    for i in range(50):
        board.log(loss=float(i))
    board.finish(wait=True)
    loaded = loaded_after(
        "import sys\nfrom kohakuboard import open_board\n"
        "assert open_board(sys.argv[1]).scalars('loss').num_rows == 50",
        str(board.path),
    )
    assert "pyarrow" in loaded and "pandas" not in loaded


def test_read_parquet_where_in_matches_read_table_filters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    metric = rng.integers(0, 9, 5000).astype(np.int32)
    step = np.arange(5000, dtype=np.int64)
    table = pa.table({"metric": metric, "step": step, "value": rng.normal(size=5000)})
    # sorted (a compacted part: one metric is a run, read as a slice) and in log order
    for name, data in (("sorted", table.sort_by("metric")), ("unsorted", table)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(data, path, row_group_size=700)
        for wanted in ([3], [0, 8], [2, 5, 7], [3, 4], [42], [0, 1, 2, 3, 4, 5, 6, 7, 8]):
            got = arrow_lean.read_parquet_where_in(path, "metric", wanted, table.schema)
            expected = pq.read_table(path, filters=[("metric", "in", wanted)], schema=table.schema)
            assert got.equals(expected), (name, wanted)


def test_to_numpy_and_int_array_round_trip() -> None:
    chunked = pa.chunked_array([pa.array([1, 2, 3]), pa.array([4, 5]).slice(1)])
    assert arrow_lean.to_numpy(chunked).tolist() == [1, 2, 3, 5]
    assert arrow_lean.to_numpy(pa.array([1.5, None])).tolist()[0] == 1.5  # nulls: to_numpy
    assert arrow_lean.int_array([7, -1], pa.int64()).to_pylist() == [7, -1]
    assert arrow_lean.empty_table(pa.schema([("a", pa.int8())])).num_rows == 0


def test_a_first_read_of_a_compacted_board_does_not_import_pyarrow_compute(
    tmp_path: Path,
) -> None:
    """pyarrow.compute costs ~30-50 ms to import (W5's budget is 40 ms); a one-metric read of
    compacted data needs none of it."""
    from kohakuboard import Board

    board = Board(base_dir=tmp_path)
    for i in range(50):
        board.log(loss=float(i), acc=float(i))
    board.finish(wait=True)
    proc = board._proc
    assert proc is not None and proc.wait(timeout=60) == 0  # compacted
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom kohakuboard import open_board\n"
            "assert open_board(sys.argv[1]).scalars('loss').num_rows == 50\n"
            "print('pyarrow.compute' in sys.modules)",
            str(board.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
