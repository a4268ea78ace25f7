"""The contract every framework integration keeps, run over each of them.

An integration is described by an :class:`Integration`: how to make its logger/callback
writing under a folder, how to run a tiny train + evaluate with it, and how to make this
process look like a rank other than 0. Every test below runs once per integration.

Adding one: write a factory like :func:`_lightning` or :func:`_transformers` that imports its
framework lazily (``pytest.importorskip``) and returns an ``Integration``, and put it in
``FACTORIES`` under its id.
"""

from __future__ import annotations

import contextlib
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kohakuboard import list_boards, open_board


@dataclass(frozen=True)
class Integration:
    make: Callable[[Path], Any]
    """The logger/callback, writing boards under the given folder; must touch no file."""
    train_and_evaluate: Callable[[Any, Path], None]
    """A tiny training run then an evaluation (its own stage), with that object."""
    other_rank: Callable[[], contextlib.AbstractContextManager[None]]
    """A context in which this process is global rank 1 of 2 for the framework."""
    train_metric: str
    eval_metric: str


# -- Lightning ----------------------------------------------------------------------------
def _lightning() -> Integration:
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning")
    from lightning.fabric.utilities.warnings import PossibleUserWarning
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from kohakuboard.integrations.lightning import KohakuBoardLogger

    class Tiny(L.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self.log("test_loss", nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_and_evaluate(logger: Any, tmp_path: Path) -> None:
        data = DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=2)
        trainer = L.Trainer(
            logger=logger,
            accelerator="cpu",
            devices=1,
            max_epochs=1,
            log_every_n_steps=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
        )
        model = Tiny()
        with warnings.catch_warnings():
            # Lightning's advice for tiny runs, and a torch 2.13 deprecation inside Lightning 2.6
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
            trainer.fit(model, data)
            trainer.test(model, data)

    @contextlib.contextmanager
    def other_rank() -> Iterator[None]:
        saved = rank_zero_only.rank
        rank_zero_only.rank = 1
        try:
            yield
        finally:
            rank_zero_only.rank = saved

    return Integration(
        make=lambda base: KohakuBoardLogger(base, log_histograms="all", histogram_every_n_steps=1),
        train_and_evaluate=train_and_evaluate,
        other_rank=other_rank,
        train_metric="train_loss",
        eval_metric="test_loss",
    )


# -- transformers ---------------------------------------------------------------------------
def _transformers() -> Integration:
    pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hf_tiny import TinyDataset, tiny_args, tiny_model
    from transformers import Trainer

    from kohakuboard.integrations.transformers import KohakuBoardCallback

    def train_and_evaluate(callback: Any, tmp_path: Path) -> None:
        args = tiny_args(tmp_path / "out", max_steps=2)
        trainer = Trainer(
            model=tiny_model(),
            args=args,
            train_dataset=TinyDataset(8),
            eval_dataset=TinyDataset(8, seed=1),
            callbacks=[callback],
        )
        trainer.train()
        trainer.evaluate()

    @contextlib.contextmanager
    def other_rank() -> Iterator[None]:
        # Every TrainerState the Trainer makes then says is_world_process_zero=False.
        saved = Trainer.is_world_process_zero
        Trainer.is_world_process_zero = lambda self: False  # type: ignore[method-assign]
        try:
            yield
        finally:
            Trainer.is_world_process_zero = saved  # type: ignore[method-assign]

    return Integration(
        make=lambda base: KohakuBoardCallback(
            base_dir=base, log_histograms="all", histogram_steps=1
        ),
        train_and_evaluate=train_and_evaluate,
        other_rank=other_rank,
        train_metric="train/loss",
        eval_metric="eval/loss",
    )


FACTORIES: dict[str, Callable[[], Integration | None]] = {
    "lightning": _lightning,
    "transformers": _transformers,
}


@pytest.fixture(params=sorted(FACTORIES))
def integration(request: pytest.FixtureRequest) -> Integration:
    made = FACTORIES[request.param]()
    if made is None:
        pytest.skip(f"no contract case written for the {request.param} integration yet")
    return made


# -- the contract -------------------------------------------------------------------------
def test_train_then_evaluate_share_one_finished_board(
    integration: Integration, tmp_path: Path
) -> None:
    base = tmp_path / "boards"
    obj = integration.make(base)
    assert not base.exists(), "nothing may be written before training starts"
    integration.train_and_evaluate(obj, tmp_path)

    (info,) = list_boards(base)
    with open_board(info.path) as r:
        assert r.status() == "finished"
        train = r.scalars(integration.train_metric).column("global_step").to_pylist()
        evaluated = r.scalars(integration.eval_metric).column("global_step").to_pylist()
        assert train and train == sorted(train)
        assert evaluated and evaluated[0] >= train[-1]
        assert r.config(), "hyperparameters are recorded"


def test_pickles_without_its_board(integration: Integration, tmp_path: Path) -> None:
    obj = integration.make(tmp_path / "boards")
    pickle.loads(pickle.dumps(obj))
    integration.train_and_evaluate(obj, tmp_path)
    again = pickle.loads(pickle.dumps(obj))
    assert type(again) is type(obj)
    assert len(list_boards(tmp_path / "boards")) == 1


def test_other_ranks_write_nothing(integration: Integration, tmp_path: Path) -> None:
    base = tmp_path / "boards"
    with integration.other_rank():
        obj = integration.make(base)
        integration.train_and_evaluate(obj, tmp_path)
    assert not base.exists()


# -- Lightning only: a pickled copy in the same process ------------------------------------
def test_lightning_unpickled_copy_logs_through_the_live_board(tmp_path: Path) -> None:
    """Lightning's own logger contract (``test_loggers_pickle_all`` in its test_all.py): the
    board exists, the Trainer holding the logger is pickled and unpickled in this process,
    and the copy logs. The copy writes through the Board that is open here (one writer):
    nothing is dropped, nothing is written twice, nothing waits for a second writer."""
    L = pytest.importorskip("lightning")
    from kohakuboard.integrations.lightning import KohakuBoardLogger

    logger = KohakuBoardLogger(tmp_path / "boards")
    board = logger.experiment  # as Lightning's test does: the board exists before pickling
    logger.log_metrics({"a": 1.0})
    logger.save()
    pickle.dumps(logger)
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        accelerator="cpu",
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer2 = pickle.loads(pickle.dumps(trainer))
    copy = trainer2.logger
    assert copy is not logger and (copy.name, copy.save_dir, copy.version) == (
        logger.name,
        logger.save_dir,
        logger.version,
    )
    idle = pickle.loads(pickle.dumps(logger))
    idle.finalize("success")  # a copy that never logged created nothing: nothing to finish
    assert not board.closed
    copy.log_metrics({"acc": 1.0})
    assert copy.experiment is board  # the live Board, not a second one on the same id
    logger.log_metrics({"a": 2.0})
    copy.finalize("success")  # finishing through either finishes the shared board ...
    logger.log_metrics({"a": 3.0})  # ... and the other re-opens it to append
    logger.finalize("success")

    (info,) = list_boards(tmp_path / "boards")
    with open_board(info.path) as r:
        assert r.status() == "finished"
        a = r.scalars("a")
        assert a.column("global_step").to_pylist() == [0, 1, 2]
        assert a.column("value").to_pylist() == [1.0, 2.0, 3.0]
        acc = r.scalars("acc")
        assert acc.column("global_step").to_pylist() == [1]
        assert acc.column("value").to_pylist() == [1.0]
    assert "ERROR" not in (info.path / "writer.log").read_text(encoding="utf-8")
