"""kobo import mlflow: a file store (mlruns/) and a SQLite store (mlflow.db).

MLflow is not installed here (its wheel would upgrade pyarrow and python-multipart for the
whole environment), so the stores are built as MLflow 2.x/3.x writes them: the file store's
meta.yaml/metrics/params/tags layout, and the SQL store's tables with MLflow's own column
names and its NaN (is_nan) and ±Inf (±1.797e308) encoding.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from kohakuboard.errors import ImportSourceError
from kohakuboard.importers import import_source
from kohakuboard.importers.mlflow import read_meta_yaml
from kohakuboard.reader import Reader

RUN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
T0 = 1_700_000_000_000


def _file_store(root: Path) -> Path:
    exp = root / "mlruns" / "1"
    run = exp / RUN
    (run / "metrics" / "val").mkdir(parents=True)
    (run / "params").mkdir()
    (run / "tags").mkdir()
    (run / "artifacts").mkdir()
    (exp / "meta.yaml").write_text(
        "artifact_location: file:///tmp/mlruns/1\ncreation_time: 1700000000000\n"
        "experiment_id: '1'\nlast_update_time: 1700000000000\nlifecycle_stage: active\n"
        "name: my experiment\n"
    )
    (run / "meta.yaml").write_text(
        f"artifact_uri: file:///tmp/mlruns/1/{RUN}/artifacts\nend_time: {T0 + 60_000}\n"
        f"entry_point_name: ''\nexperiment_id: '1'\nlifecycle_stage: active\nrun_id: {RUN}\n"
        f"run_name: bright-fox-7\nrun_uuid: {RUN}\nsource_name: ''\nsource_type: 4\n"
        f"source_version: ''\nstart_time: {T0}\nstatus: 3\ntags: []\nuser_id: root\n"
    )
    (run / "metrics" / "loss").write_text(
        "".join(f"{T0 + 10 * i} {1 / (i + 1)!r} {i}\n" for i in range(5))
        + f"{T0 + 99} nan 5\n{T0 + 100} inf 6\n"
    )
    (run / "metrics" / "val" / "acc").write_text(f"{T0} 0.5 0\n{T0 + 5} 0.75 10\n")
    (run / "params" / "lr").write_text("0.001")
    (run / "params" / "optimizer").write_text("adam")
    (run / "tags" / "mlflow.runName").write_text("bright-fox-7")
    (run / "tags" / "mlflow.user").write_text("root")
    deleted = exp / "ffff"  # a deleted run is skipped
    deleted.mkdir()
    (deleted / "meta.yaml").write_text("run_id: ffff\nlifecycle_stage: deleted\nstatus: 3\n")
    (root / "mlruns" / ".trash").mkdir()
    return root / "mlruns"


def _points(reader: Reader, name: str) -> list[tuple[int, float, float]]:
    t = reader.scalars(name)
    return list(
        zip(
            t.column("step").to_pylist(),
            t.column("wall_time").to_pylist(),
            t.column("value").to_pylist(),
            strict=True,
        )
    )


def test_file_store_run_with_every_point_params_and_tags(tmp_path: Path) -> None:
    store = _file_store(tmp_path)
    (report,) = import_source("mlflow", [store], tmp_path / "out")
    assert report.run == "bright-fox-7" and report.added == {"scalars": 9}
    with Reader(tmp_path / "out" / report.board_id) as reader:
        assert reader.meta.project == "my experiment"
        assert reader.meta.created_at == T0 / 1000
        assert reader.status() == "finished"
        loss = _points(reader, "loss")
        assert [(s, w) for s, w, _ in loss] == [(i, (T0 + 10 * i) / 1000) for i in range(5)] + [
            (5, (T0 + 99) / 1000),
            (6, (T0 + 100) / 1000),
        ]
        assert [v for _, _, v in loss[:5]] == [1 / (i + 1) for i in range(5)]
        assert math.isnan(loss[5][2]) and loss[6][2] == math.inf
        assert _points(reader, "val/acc") == [(0, T0 / 1000, 0.5), (10, (T0 + 5) / 1000, 0.75)]
        config = reader.config()
        assert config["lr"] == "0.001" and config["optimizer"] == "adam"  # MLflow params: text
        assert config["mlflow"]["run_id"] == RUN
        assert config["mlflow"]["tags"]["mlflow.user"] == "root"
        assert config["mlflow"]["status"] == "FINISHED"


def test_file_store_reimport_reads_only_appended_lines(tmp_path: Path) -> None:
    store = _file_store(tmp_path)
    (first,) = import_source("mlflow", [store], tmp_path / "out", project="p")
    loss = store / "1" / RUN / "metrics" / "loss"
    with open(loss, "a") as fh:
        fh.write(f"{T0 + 200} 0.01 7\n{T0 + 300} 0.0")  # the last line is still being written
    (second,) = import_source("mlflow", [store], tmp_path / "out", project="p")
    assert second.board_id == first.board_id and second.added == {"scalars": 1}
    with open(loss, "a") as fh:
        fh.write("05 8\n")
    (third,) = import_source("mlflow", [store], tmp_path / "out", project="p")
    assert third.added == {"scalars": 1}
    with Reader(tmp_path / "out" / first.board_id) as reader:
        assert [s for s, _, _ in _points(reader, "loss")] == list(range(9))
        assert _points(reader, "loss")[-1][2] == 0.005


def test_meta_yaml_is_read_as_text_never_evaluated(tmp_path: Path) -> None:
    meta = tmp_path / "meta.yaml"
    meta.write_text(
        "name: !!python/object/apply:os.system ['echo pwned']\nrun_name: 'it''s'\n"
        "tags:\n- key: a\n  value: b\nend_time: null\n"
    )
    parsed = read_meta_yaml(meta)
    assert parsed["name"] == "!!python/object/apply:os.system ['echo pwned']"
    assert parsed["run_name"] == "it's" and parsed["end_time"] is None
    assert "key" not in parsed


def _sqlite_store(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256),
            artifact_location VARCHAR(256), lifecycle_stage VARCHAR(32), creation_time BIGINT,
            last_update_time BIGINT);
        CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, name VARCHAR(250),
            source_type VARCHAR(20), source_name VARCHAR(500), entry_point_name VARCHAR(50),
            user_id VARCHAR(256), status VARCHAR(9), start_time BIGINT, end_time BIGINT,
            deleted_time BIGINT, source_version VARCHAR(50), lifecycle_stage VARCHAR(20),
            artifact_uri VARCHAR(200), experiment_id INTEGER);
        CREATE TABLE metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT,
            run_uuid VARCHAR(32), step BIGINT DEFAULT 0, is_nan BOOLEAN DEFAULT 0,
            PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan));
        CREATE TABLE params (key VARCHAR(250), value VARCHAR(8000), run_uuid VARCHAR(32),
            PRIMARY KEY (key, run_uuid));
        CREATE TABLE tags (key VARCHAR(250), value VARCHAR(8000), run_uuid VARCHAR(32),
            PRIMARY KEY (key, run_uuid));
        CREATE TABLE latest_metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT,
            step BIGINT, is_nan BOOLEAN, run_uuid VARCHAR(32));
        INSERT INTO experiments VALUES (0, 'Default', 'mlruns/0', 'active', 0, 0);
        INSERT INTO experiments VALUES (3, 'gone', 'mlruns/3', 'deleted', 0, 0);
        """
    )
    runs = [
        ("r1", "first", "FINISHED", 0),
        ("r2", "second", "FAILED", 0),
        ("r3", "x", "FINISHED", 3),
    ]
    for uid, name, status, exp in runs:
        db.execute(
            "INSERT INTO runs (run_uuid, name, status, start_time, end_time, lifecycle_stage, "
            "experiment_id, source_type, user_id) VALUES (?, ?, ?, ?, ?, 'active', ?, 'LOCAL', 'u')",
            (uid, name, status, T0, T0 + 1000, exp),
        )
    rows = [("loss", 0.5, T0 + i, "r1", i, 0) for i in range(4)]
    rows += [
        ("loss", 0.0, T0 + 9, "r1", 4, 1),
        ("loss", 1.7976931348623157e308, T0 + 10, "r1", 5, 0),
    ]
    rows += [("acc", 0.25, T0, "r2", 0, 0), ("acc", 0.5, T0, "r2", 0, 0)]  # same time and step
    db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO params VALUES ('batch', '32', 'r1')")
    db.execute("INSERT INTO tags VALUES ('mlflow.source.name', 'train.py', 'r1')")
    db.commit()
    db.close()


def test_sqlite_store_runs_points_and_incremental(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    _sqlite_store(store)
    reports = import_source("mlflow", [store], tmp_path / "out")
    assert [r.run for r in reports] == ["first", "second"]  # the deleted experiment: skipped
    first, second = reports
    with Reader(tmp_path / "out" / first.board_id) as reader:
        loss = _points(reader, "loss")
        assert [(s, w) for s, w, _ in loss] == [(i, (T0 + i) / 1000) for i in range(4)] + [
            (4, (T0 + 9) / 1000),
            (5, (T0 + 10) / 1000),
        ]
        assert math.isnan(loss[4][2]) and loss[5][2] == 1.7976931348623157e308
        assert reader.config()["batch"] == "32"
        assert reader.meta.project == "Default"
    with Reader(tmp_path / "out" / second.board_id) as reader:
        assert sorted(v for _, _, v in _points(reader, "acc")) == [0.25, 0.5]
        assert reader.status() == "failed"
    db = sqlite3.connect(store)
    db.execute("INSERT INTO metrics VALUES ('loss', 0.1, ?, 'r1', 6, 0)", (T0 + 20,))
    db.commit()
    db.close()
    again = import_source("mlflow", [store], tmp_path / "out")
    assert [r.added for r in again] == [{"scalars": 1}, {}]


def test_not_an_mlflow_store_is_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ImportSourceError, match="is not an MLflow SQLite store: no table"):
        import_source("mlflow", [other], tmp_path / "out")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ImportSourceError, match="cannot read .* as an MLflow SQLite store"):
        import_source("mlflow", [junk], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportSourceError, match="no MLflow runs under"):
        import_source("mlflow", [tmp_path / "empty"], tmp_path / "out")


def test_long_metric_file_is_read_in_chunks_and_committed_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kohakuboard.importers.mlflow as mlflow_import

    monkeypatch.setattr(mlflow_import, "CHUNK", 1000)  # lines cut across chunks
    monkeypatch.setattr(mlflow_import, "COMMIT_POINTS", 100)
    store = _file_store(tmp_path)
    lines = "".join(f"{T0 + i} {i * 0.5!r} {i}\n" for i in range(2000))
    (store / "1" / RUN / "metrics" / "loss").write_text(lines)
    (report,) = import_source("mlflow", [store], tmp_path / "out")
    with Reader(tmp_path / "out" / report.board_id) as reader:
        points = _points(reader, "loss")
    assert points == [(i, (T0 + i) / 1000, i * 0.5) for i in range(2000)]
    (again,) = import_source("mlflow", [store], tmp_path / "out")
    assert again.added == {}
