"""kobo import mlflow against stores written by MLflow itself (mlflow-skinny, no network).

MLflow's own client writes a file store (``file:``) and a SQLite store (``sqlite:///``) in
tmp_path: two experiments, several runs, params, tags, metrics with explicit steps and
timestamps, NaN and ±Inf, repeated steps and a deleted run. After ``kobo import mlflow``, every
point (step, value, wall time in seconds against MLflow's millisecond timestamp) is compared
with ``MlflowClient.get_metric_history`` and the params and tags with ``get_run``.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# set before mlflow is imported: it decides on telemetry at import time
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

mlflow = pytest.importorskip("mlflow")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from kohakuboard.importers import import_source  # noqa: E402
from kohakuboard.importers.mlflow import read_meta_yaml  # noqa: E402
from kohakuboard.reader import Reader  # noqa: E402

T0 = 1_700_000_000_000
Point = tuple[int, float, bool, float]  # step, wall time (s), is NaN, value (0.0 for NaN)


def _key(step: int, wall: float, value: float) -> Point:
    nan = math.isnan(value)
    return (step, wall, nan, 0.0 if nan else value)


def _log_runs(client: Any) -> dict[str, str]:
    """Runs in two experiments; returns run id -> experiment name of the live runs."""
    live: dict[str, str] = {}
    # names past 80 columns: the file store's YAML folds them over several lines
    exp_a = client.create_experiment('vision: résumé "v2" #1 ' + "long words " * 10)
    exp_b = client.create_experiment("text")
    for n, exp in enumerate([exp_a, exp_a, exp_b]):
        run = client.create_run(exp, run_name=f"run-{n} ünï: 'x' \t" + "w " * 50)
        rid = run.info.run_id
        metrics = [Metric("loss", 1.0 / (i + 1) + n, T0 + 10 * i, i) for i in range(30)]
        metrics += [
            Metric("loss", float("nan"), T0 + 400, 30),
            Metric("loss", float("inf"), T0 + 401, 31),
            Metric("loss", float("-inf"), T0 + 402, 32),
            Metric("loss", 0.1, T0 + 403, 32),  # the same step again, later
            Metric("loss", 0.2, T0 + 403, 32),  # and again, same timestamp
            Metric("loss", 1e-300, T0 + 404, 33),
        ]
        metrics += [Metric("val/acc", 0.5 + 0.01 * i, T0 + 1000 * i, 100 * i) for i in range(5)]
        metrics += [Metric("lr", 3e-4, T0 - 5, -1), Metric("lr", 3e-5, T0 + 7, 2**40)]
        client.log_batch(
            rid,
            metrics=metrics,
            params=[Param("lr", "0.0003"), Param("opt", "adam"), Param("nested/depth", str(n))],
            tags=[RunTag("team", "kohaku"), RunTag("note", f"it's run {n}\nline two")],
        )
        client.log_metric(rid, "single", 42.0, timestamp=T0 + 5, step=7)
        client.set_terminated(rid, status="FAILED" if n == 1 else "FINISHED", end_time=T0 + 9999)
        live[rid] = client.get_experiment(exp).name
    gone = client.create_run(exp_b, run_name="deleted")
    client.log_metric(gone.info.run_id, "loss", 1.0, timestamp=T0, step=0)
    client.delete_run(gone.info.run_id)
    dropped = client.create_experiment("dropped")  # a deleted experiment: its runs skipped
    client.log_metric(client.create_run(dropped).info.run_id, "loss", 1.0, timestamp=T0, step=0)
    client.delete_experiment(dropped)
    going = client.create_run(exp_b, run_name="still going")  # RUNNING: no end yet
    client.log_metric(going.info.run_id, "loss", 2.0, timestamp=T0 + 1, step=3)
    live[going.info.run_id] = client.get_experiment(exp_b).name
    return live


def _check_import(store: Path, out: Path, live: dict[str, str], client: Any) -> None:
    reports = import_source("mlflow", [store], out)
    assert len(reports) == len(live)  # the deleted run is skipped
    by_run = {}
    for report in reports:
        with Reader(out / report.board_id) as reader:
            config = reader.config()
            by_run[config["mlflow"]["run_id"]] = report.board_id
            assert report.run == client.get_run(config["mlflow"]["run_id"]).info.run_name
    assert set(by_run) == set(live)
    for rid, experiment in live.items():
        run = client.get_run(rid)
        with Reader(out / by_run[rid]) as reader:
            assert reader.meta.project == experiment
            assert reader.meta.created_at == run.info.start_time / 1000
            status = {"FAILED": "failed", "FINISHED": "finished", "RUNNING": "interrupted"}
            assert reader.status() == status[run.info.status]
            config = reader.config()
            assert {k: config[k] for k in run.data.params} == run.data.params
            assert config["mlflow"]["tags"] == run.data.tags
            assert config["mlflow"]["status"] == run.info.status
            end = run.info.end_time
            assert config["mlflow"]["end_time"] == (None if end is None else end / 1000)
            assert config["mlflow"]["experiment"] == experiment
            assert set(reader.metrics()) == set(run.data.metrics)
            for key in run.data.metrics:
                history = client.get_metric_history(rid, key)
                expected = sorted(_key(m.step, m.timestamp / 1000, m.value) for m in history)
                table = reader.scalars(key)
                got = sorted(
                    _key(s, w, v)
                    for s, w, v in zip(
                        table.column("step").to_pylist(),
                        table.column("wall_time").to_pylist(),
                        table.column("value").to_pylist(),
                        strict=True,
                    )
                )
                assert got == expected, key
    again = import_source("mlflow", [store], out)
    assert [r.added for r in again] == [{}] * len(live)  # idempotent


@pytest.fixture
def tracking(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(uri: str) -> Any:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        return MlflowClient()

    return use


def test_file_store_written_by_mlflow_matches_its_client(
    tmp_path: Path, tracking: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow 3.x refuses new file stores unless asked; it still writes and reads them
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    client = tracking(store.as_uri())
    live = _log_runs(client)
    _check_import(store, tmp_path / "out", live, client)


# MLflow 3.18's SQL store uses a loader strategy SQLAlchemy 2.1 deprecates (their warning)
@pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)
def test_sqlite_store_written_by_mlflow_matches_its_client(tmp_path: Path, tracking: Any) -> None:
    pytest.importorskip("sqlalchemy", reason="MLflow's SQL store needs sqlalchemy")
    pytest.importorskip("alembic", reason="MLflow's SQL store needs alembic")
    store = tmp_path / "mlflow.db"
    client = tracking(f"sqlite:///{store}")
    live = _log_runs(client)
    _check_import(store, tmp_path / "out", live, client)


_PIECES = list("ab '\"\\:#-\t\n\r\x07\x85\u2028\xa0é€") + ["x" * 30, "  ", "\n\n", "\U0001f600"]


@settings(max_examples=300, deadline=None)
@given(
    name=st.lists(st.sampled_from(_PIECES), max_size=40).map("".join) | st.text(max_size=120),
    libyaml=st.booleans(),
)
def test_meta_yaml_values_read_as_pyyaml_reads_what_mlflow_writes(name: str, libyaml: bool) -> None:
    # MLflow writes meta.yaml with yaml.dump(default_flow_style=False, allow_unicode=True) and
    # the safe dumper (libyaml's when present): long values fold, odd characters are escaped
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper) if libyaml else yaml.SafeDumper
    text = yaml.dump(
        {"name": name, "run_id": "r", "z": 1},
        default_flow_style=False,
        allow_unicode=True,
        Dumper=dumper,
    )
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "meta.yaml"
        meta.write_text(text, encoding="utf-8")
        parsed = read_meta_yaml(meta)
    assert parsed["name"] == yaml.safe_load(text)["name"]
    assert parsed["run_id"] == "r" and parsed["z"] == "1"
