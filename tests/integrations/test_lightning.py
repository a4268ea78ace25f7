"""KohakuBoardLogger with real Lightning Trainers (tiny models built here, CPU, few steps)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import textwrap
from argparse import Namespace
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_only  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lit_tiny import Tiny, TinyGAN, data  # noqa: E402

from kohakuboard import list_boards, open_board  # noqa: E402
from kohakuboard.integrations.lightning import (  # noqa: E402
    HistogramCallback,
    KohakuBoardLogger,
    flatten_hparams,
)

# Lightning 2.6 with torch 2.13 warns on every DataLoader (not ours to fix); tiny runs also
# trip Lightning's advice category ("few workers", "few batches", ...).
pytestmark = [
    pytest.mark.filterwarnings(
        r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
    ),
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
]


def trainer(tmp_path: Path, logger: Any, **kwargs: Any) -> L.Trainer:
    kwargs.setdefault("max_epochs", 1)
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(
        logger=logger,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        **kwargs,
    )


def global_steps(reader: Any, name: str) -> list[int]:
    return reader.scalars(name).column("global_step").to_pylist()


def test_metrics_and_histograms_land_at_the_optimizer_step(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    logger = KohakuBoardLogger(base, name="steps", log_histograms="all", histogram_every_n_steps=2)
    assert not base.exists()  # nothing on disk before the Trainer needs it
    t = trainer(
        tmp_path,
        logger,
        accumulate_grad_batches=2,
        log_every_n_steps=1,
        callbacks=[LearningRateMonitor()],
    )
    t.fit(Tiny(), data(16), data(4))  # 8 batches -> 4 optimizer steps

    (info,) = list_boards(base)
    assert info.path == Path(logger.log_dir).resolve() and info.name == "steps"
    with open_board(info.path) as r:
        assert r.status() == "finished"
        # one point per optimizer step, at the step Lightning passed (= its LR monitor's)
        assert global_steps(r, "train/loss") == [0, 1, 2, 3]
        assert global_steps(r, "epoch") == [0, 1, 2, 3, 3]  # the val epoch metrics too
        assert set(global_steps(r, "lr-SGD")) <= {0, 1, 2, 3}
        assert global_steps(r, "val/loss") == [3]  # shares the last training step
        names = [name for name, _ in Tiny().named_parameters()]
        assert sorted(r.keys("histogram")) == sorted(
            [f"grad/{n}" for n in names] + [f"param/{n}" for n in names]
        )
        for name in r.keys("histogram"):
            rows = r.histograms(name)
            # (s + 1) % 2 == 0: the steps log_every_n_steps=2 would log metrics at
            assert [row.global_step for row in rows] == [1, 3]
            assert all(row.data["count"] > 0 for row in rows)
        # the callback was added once and only once
    assert sum(isinstance(cb, HistogramCallback) for cb in t.callbacks) == 1


@pytest.mark.parametrize("d_steps", [1, 2])
def test_two_optimizers_histograms_at_the_step_of_their_loss(tmp_path: Path, d_steps: int) -> None:
    # Manual optimization (a GAN): Lightning's global_step counts both optimizers' steps (2 or
    # 3 per batch) while every logger gets one step per batch. Each optimizer's tensors belong
    # to the loss logged at that batch's step, once per step even if it stepped twice.
    logger = KohakuBoardLogger(tmp_path / "boards", log_histograms="all", histogram_every_n_steps=2)
    t = trainer(tmp_path, logger, log_every_n_steps=2)
    t.fit(TinyGAN(d_steps), data(16))  # 8 batches
    assert t.global_step == 8 * (1 + d_steps)
    with open_board(logger.log_dir) as r:
        assert global_steps(r, "d_loss") == global_steps(r, "g_loss") == [1, 3, 5, 7]
        names = [name for name, _ in TinyGAN().named_parameters()]
        expected = {f"{kind}/{name}" for name in names for kind in ("grad", "param")}
        assert set(r.keys("histogram")) == expected  # the generator's and the discriminator's
        for key in sorted(expected):
            assert [row.global_step for row in r.histograms(key)] == [1, 3, 5, 7], key


def test_fit_validate_test_share_one_board(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    logger = KohakuBoardLogger(base, name="life", project="p", config={"data": {"n": 8}})
    ckpt = ModelCheckpoint(monitor="val/loss", save_top_k=1, save_last=True)
    t = trainer(
        tmp_path,
        logger,
        max_epochs=2,
        log_every_n_steps=1,
        enable_checkpointing=True,
        callbacks=[ckpt],
    )
    model = Tiny(lr=0.05, extra_cls=nn.Linear, extra_fn=_explode)
    t.fit(model, data(), data(4))
    assert Path(ckpt.dirpath).resolve() == Path(logger.log_dir).resolve() / "checkpoints"
    t.validate(model, data(4))
    t.test(model, data(4))

    (info,) = list_boards(base)
    with open_board(info.path) as r:
        assert r.status() == "finished"
        assert {"train/loss", "val/loss", "test/loss", "epoch"} <= set(r.metrics())
        assert global_steps(r, "train/loss") == list(range(8))
        assert global_steps(r, "test/loss") == [8]  # after fit: Lightning's step stays at 8
        config = r.config()
        assert config["data/n"] == 8 and config["lr"] == 0.05 and config["hidden"] == 4
        assert config["extra_cls"] == "torch.nn.modules.linear.Linear"
        assert config["extra_fn"].endswith("_explode")
        table = r.tables("checkpoints")[-1]
        rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
        best = [row for row in rows if row["is_best"]]
        assert (
            len(best) == 1
            and best[0]["monitor"] == "val/loss"
            and isinstance(best[0]["score"], float)
        )
        assert any(row["is_last"] for row in rows)
        for row in rows:  # relative to the board directory, and really there
            assert row["path"].startswith("checkpoints" + os.sep)
            assert (info.path / row["path"]).is_file()
            assert row["global_step"] in (4, 8) and row["epoch"] in (0, 1)


def test_checkpoints_table_lists_every_kept_file(tmp_path: Path) -> None:
    logger = KohakuBoardLogger(tmp_path / "boards")
    keep_all = ModelCheckpoint(save_top_k=-1)  # no monitor: a file per epoch, every one kept
    # top 1, no monitor: each save replaces the one before (every 4 steps = every epoch here)
    newest = ModelCheckpoint(
        dirpath=tmp_path / "newest", filename="newest-{step}", every_n_train_steps=4
    )
    t = trainer(
        tmp_path, logger, max_epochs=3, enable_checkpointing=True, callbacks=[keep_all, newest]
    )
    t.fit(Tiny(), data())
    kept = sorted(Path(keep_all.dirpath).glob("*.ckpt")) + sorted(
        Path(newest.dirpath).glob("*.ckpt")
    )
    assert len(kept) == 4
    with open_board(logger.log_dir) as r:
        tables = r.tables("checkpoints")
        rows = [dict(zip(tables[-1].columns, row, strict=True)) for row in tables[-1].rows]
        board_dir = Path(logger.log_dir).resolve()
        assert sorted((board_dir / row["path"]).resolve() for row in rows) == [
            p.resolve() for p in kept
        ]
        assert sorted(row["global_step"] for row in rows) == [4, 8, 12, 12]
        # after each epoch's two saves: the files that exist then
        assert [len(table.rows) for table in tables] == [1, 2, 2, 3, 3, 4]


def _explode(*args: Any) -> None:
    raise AssertionError("a hyperparameter was called")


def test_failure_marks_the_board_failed(tmp_path: Path) -> None:
    class Broken(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 1:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    logger = KohakuBoardLogger(tmp_path / "boards")
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, logger, log_every_n_steps=1).fit(Broken(), data())
    with open_board(logger.log_dir) as r:
        assert r.status() == "failed"
        assert global_steps(r, "train/loss") == [0]


def test_finalize_status_and_reopen(tmp_path: Path) -> None:
    logger = KohakuBoardLogger(tmp_path / "boards")
    logger.finalize("success")  # nothing was created: nothing happens
    assert not (tmp_path / "boards").exists()

    logger.log_metrics({"a": 1.0}, step=3)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        logger.finalize("failed")  # Lightning reports Ctrl+C as failed
    with open_board(logger.log_dir) as r:
        assert r.status() == "interrupted"
    logger.log_metrics({"a": 2.0}, step=4)  # re-opens the same board
    logger.finalize("success")
    (info,) = list_boards(tmp_path / "boards")
    with open_board(info.path) as r:
        assert r.status() == "finished"
        assert global_steps(r, "a") == [3, 4]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("success", "finished"),
        ("finished", "finished"),
        ("failed", "failed"),
        ("crashed", "failed"),
        ("aborted", "interrupted"),
        ("interrupted", "interrupted"),
    ],
)
def test_finalize_maps_each_status_to_one_the_board_takes(
    tmp_path: Path, status: str, expected: str
) -> None:
    logger = KohakuBoardLogger(tmp_path / "boards")
    logger.log_metrics({"a": 1.0}, step=0)
    logger.finalize(status)
    with open_board(logger.log_dir) as r:
        assert r.status() == expected
        assert global_steps(r, "a") == [0]


def test_omegaconf_hyperparameters_keep_their_lists(tmp_path: Path) -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create(
        {"sizes": [4, 8], "blocks": [{"kind": "conv", "width": "${sizes[1]}"}], "todo": [1, "???"]}
    )
    logger = KohakuBoardLogger(tmp_path / "boards")
    model = Tiny(layers=omegaconf.ListConfig([1, 2, 3]), cfg=cfg)
    trainer(tmp_path, logger, log_every_n_steps=1).fit(model, data())
    with open_board(logger.log_dir) as r:
        config = r.config()
    assert config["layers"] == [1, 2, 3]
    assert config["cfg/sizes"] == [4, 8]
    assert config["cfg/blocks"] == [{"kind": "conv", "width": 8}]  # interpolation resolved
    assert config["cfg/todo"] == [1, "<unreadable: MissingMandatoryValue>"]


def test_pickling_drops_the_board_and_keeps_the_id(tmp_path: Path) -> None:
    logger = KohakuBoardLogger(tmp_path / "boards", name="pk", log_histograms="gradients")
    fresh = pickle.loads(pickle.dumps(logger))
    assert fresh.version == logger.version and not (tmp_path / "boards").exists()

    logger.log_metrics({"x": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._board is None and logger.experiment.closed is False
    logger.finalize("success")
    copy.log_metrics({"x": 2.0}, step=1)  # appends to the same board
    copy.finalize("success")
    (info,) = list_boards(tmp_path / "boards")
    with open_board(info.path) as r:
        assert r.scalars("x").column("value").to_pylist() == [1.0, 2.0]


def test_other_ranks_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = KohakuBoardLogger(tmp_path / "boards", log_histograms="all", histogram_every_n_steps=1)
    logger.experiment.log(anything=1.0)  # the no-op experiment
    trainer(tmp_path, logger, log_every_n_steps=1).fit(Tiny(), data())
    logger.log_hyperparams({"a": 1})
    logger.finalize("success")
    assert not (tmp_path / "boards").exists()


def test_fabric_log_and_log_dict(tmp_path: Path) -> None:
    from lightning.fabric import Fabric

    logger = KohakuBoardLogger(tmp_path / "boards")
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])
    fabric.log("loss", 1.0)  # no step: the logger counts
    fabric.log("loss", torch.tensor(0.5))
    fabric.log_dict({"loss": 0.25, "acc": 0.9}, step=10)
    fabric.logger.log_hyperparams(Namespace(lr=0.1))
    model = nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().backward()
    logger.log_histograms([(f"grad/{n}", p.grad) for n, p in model.named_parameters()], step=10)
    logger.finalize("success")
    with open_board(logger.log_dir) as r:
        assert global_steps(r, "loss") == [0, 1, 10]
        assert r.scalars("loss").column("value").to_pylist() == [1.0, 0.5, 0.25]
        assert r.config()["lr"] == 0.1
        assert [row.global_step for row in r.histograms("grad/weight")] == [10]


def test_standalone_pytorch_lightning_trainer(tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")

    class PLTiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    logger = KohakuBoardLogger(
        tmp_path / "boards", log_histograms="gradients", histogram_every_n_steps=2
    )
    pl.Trainer(
        logger=logger,
        accelerator="cpu",
        max_steps=4,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    ).fit(PLTiny(), data())
    with open_board(logger.log_dir) as r:
        assert r.status() == "finished"
        assert global_steps(r, "loss") == [0, 1, 2, 3]
        assert [row.global_step for row in r.histograms("grad/net.weight")] == [1, 3]


@dataclasses.dataclass
class _Opt:
    name: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.99)


class _Missing(Mapping[str, Any]):
    """Like an OmegaConf node with a mandatory "???" value: reading it raises."""

    def __getitem__(self, key: str) -> Any:
        if key == "missing":
            raise ValueError("Missing mandatory value")
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(["ok", "missing"])

    def __len__(self) -> int:
        return 2


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_flatten_hparams_takes_anything_and_never_calls() -> None:
    flat = flatten_hparams(
        Namespace(
            lr=torch.tensor(0.5),
            weights=torch.ones(3, 2),
            model={"layers": [1, 2], "act": nn.ReLU, "init": _explode, "opt": _Opt()},
            cfg=_Missing(),
            nan=float("nan"),
            path=Path("/data/x"),
            bad=_BadRepr(),
            obj=object(),
            empty={},
        )
    )
    assert flat["lr"] == 0.5
    assert flat["weights"] == "Tensor(shape=[3, 2], dtype=float32)"
    assert flat["model/layers"] == [1, 2]
    assert flat["model/act"] == "torch.nn.modules.activation.ReLU"
    assert flat["model/init"].endswith("_explode")
    assert flat["model/opt/name"] == "sgd" and flat["model/opt/betas"] == [0.9, 0.99]
    assert flat["cfg/ok"] == 1 and flat["cfg/missing"] == "<unreadable: ValueError>"
    assert flat["nan"] == "nan" and flat["path"] == "/data/x"
    assert flat["bad"] == "<_BadRepr>" and flat["obj"] == "<builtins.object>"
    assert flat["empty"] == {}
    assert flatten_hparams(None) == {}


def test_constructor_checks_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_histograms must be one of .*, got 'grads'"):
        KohakuBoardLogger(tmp_path, log_histograms="grads")
    with pytest.raises(ValueError, match="histogram_every_n_steps must be an int >= 1, got 0"):
        KohakuBoardLogger(tmp_path, histogram_every_n_steps=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'log_graph'.*ring_size"):
        KohakuBoardLogger(tmp_path, log_graph=True)
    with pytest.raises(ValueError, match="version must be a plain folder name"):
        KohakuBoardLogger(tmp_path, version="a/b")
    assert KohakuBoardLogger(tmp_path, version=3).version == "version_3"
    assert not any(tmp_path.iterdir())


def test_imports_nothing_private_from_lightning() -> None:
    import ast

    import kohakuboard.integrations.lightning as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] in ("lightning", "pytorch_lightning"):
                names = parts + [alias.name for alias in node.names]
                assert not [n for n in names if n.startswith("_")], ast.unparse(node)


def test_lazy_reexport_does_not_import_frameworks() -> None:
    code = (
        "import sys, kohakuboard\n"
        "assert not {'torch', 'lightning', 'pytorch_lightning'} & set(sys.modules)\n"
        "from kohakuboard.integrations.lightning import KohakuBoardLogger\n"
        "assert kohakuboard.KohakuBoardLogger is KohakuBoardLogger\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


DDP_SCRIPT = """
import sys
import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from kohakuboard.integrations.lightning import KohakuBoardLogger


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    logger = KohakuBoardLogger(sys.argv[1], log_histograms="gradients", histogram_every_n_steps=1)
    data = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    trainer = L.Trainer(
        logger=logger, strategy="ddp_spawn", accelerator="cpu", devices=2, max_epochs=1,
        log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), DataLoader(data, batch_size=2))
    print("DONE", logger.version)
"""


def test_ddp_spawn_two_processes_make_one_board(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT), encoding="utf-8")
    base = tmp_path / "boards"
    done = subprocess.run(
        [sys.executable, str(script), str(base)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (info,) = list_boards(base)
    assert info.id in done.stdout  # rank 0 in the spawned process used the pickled id
    assert sorted(p.name for p in base.iterdir()) == [info.id]
    with open_board(info.path) as r:
        assert r.status() == "finished"
        # 16 samples / 2 ranks / batch 2 = 4 optimizer steps, written once (rank 0 only)
        assert global_steps(r, "loss") == [0, 1, 2, 3]
        assert [row.global_step for row in r.histograms("grad/net.weight")] == [0, 1, 2, 3]


TB_EXAMPLE = """
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class LitRegressor(L.LightningModule):
    def __init__(self, hidden_dim=8, learning_rate=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.l1 = nn.Linear(4, self.hparams.hidden_dim)
        self.l2 = nn.Linear(self.hparams.hidden_dim, 1)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log_dict({"val_loss": nn.functional.mse_loss(self(x), y), "val_mae": (self(x) - y).abs().mean()})

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2)}


def main(save_dir):
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g))
    train, val = torch.utils.data.random_split(ds, [24, 8], generator=g)
    logger = TensorBoardLogger(save_dir, name="lit_regressor")
    trainer = L.Trainer(
        max_epochs=2, logger=logger, log_every_n_steps=2, accelerator="cpu", enable_progress_bar=False,
        callbacks=[ModelCheckpoint(monitor="val_loss"), LearningRateMonitor(logging_interval="step")],
    )
    model = LitRegressor()
    trainer.fit(model, DataLoader(train, batch_size=4), DataLoader(val, batch_size=4))
    trainer.test(model, DataLoader(val, batch_size=4))
    print("log_dir", trainer.logger.log_dir)
    return trainer
"""


def test_swapped_into_a_tensorboard_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The only change a user makes: the import line.
    source = TB_EXAMPLE.replace(
        "from lightning.pytorch.loggers import TensorBoardLogger",
        "from kohakuboard.integrations.lightning import KohakuBoardLogger as TensorBoardLogger",
    )
    assert source != TB_EXAMPLE
    namespace: dict[str, Any] = {"__name__": "tb_example"}
    exec(compile(source, "tb_example.py", "exec"), namespace)
    t = namespace["main"](str(tmp_path / "tb_logs"))
    (info,) = list_boards(tmp_path / "tb_logs")
    assert info.name == "lit_regressor"
    assert f"log_dir {t.logger.log_dir}" in capsys.readouterr().out
    with open_board(info.path) as r:
        assert r.status() == "finished"
        for key in (
            "train_loss_step",
            "train_loss_epoch",
            "val_loss",
            "val_mae",
            "test_loss",
            "lr-Adam",
            "epoch",
        ):
            assert r.scalars(key).num_rows > 0, key
        # 24 samples / batch 4 = 6 steps per epoch; log_every_n_steps=2 -> steps 1, 3, 5, ...
        assert global_steps(r, "train_loss_step") == [1, 3, 5, 7, 9, 11]
        assert r.config()["hidden_dim"] == 8
        (best,) = [row for row in r.tables("checkpoints")[-1].rows if row[5]]
        assert (info.path / best[0]).is_file()


def test_example_runs_offline_and_shows_histograms(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "lightning_mnist_like.py"
    base = tmp_path / "boards"
    done = subprocess.run(
        [
            sys.executable,
            str(example),
            "--base-dir",
            str(base),
            "--epochs",
            "1",
            "--samples",
            "256",
            "--histogram-every",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (info,) = list_boards(base)
    assert str(info.path) in done.stdout and "kobo open" in done.stdout
    with open_board(info.path) as r:
        assert r.status() == "finished" and info.name == "mnist-like"
        assert global_steps(r, "train/loss") == [1, 3]  # 4 steps, every 2nd
        assert [row.global_step for row in r.histograms("grad/net.0.weight")] == [1, 3]
        assert [row.global_step for row in r.histograms("param/net.0.weight")] == [1, 3]
        assert r.keys("media") == ["val/samples"] and r.tables("checkpoints")
        assert r.config()["optimizer/momentum"] == 0.9
