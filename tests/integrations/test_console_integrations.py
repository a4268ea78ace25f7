"""The integrations pass console capture and system metrics options to their Board: a real
Lightning fit and a real transformers Trainer on tiny models (CPU)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L  # noqa: E402
from hf_tiny import TinyDataset, tiny_args, tiny_model  # noqa: E402
from lit_tiny import Tiny, data  # noqa: E402
from transformers import Trainer, TrainerCallback  # noqa: E402

from kohakuboard import list_boards, open_board  # noqa: E402
from kohakuboard.integrations.lightning import KohakuBoardLogger  # noqa: E402
from kohakuboard.integrations.transformers import KohakuBoardCallback  # noqa: E402

# as in test_lightning.py: Lightning's warnings about tiny runs are not ours to fix
pytestmark = [
    pytest.mark.filterwarnings(
        r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
    ),
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
]


class _Say(L.Callback):
    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        print(f"lightning batch {trainer.global_step}")


def test_lightning_logger_captures_console(tmp_path: Path) -> None:
    logger = KohakuBoardLogger(save_dir=tmp_path / "boards", capture_console=True)
    L.Trainer(
        logger=logger,
        accelerator="cpu",
        max_steps=3,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[_Say()],
    ).fit(Tiny(), data())
    with open_board(logger.log_dir) as r:
        texts = [line.text for line in r.console()]
    assert [t for t in texts if t.startswith("lightning batch")] == [
        "lightning batch 1",
        "lightning batch 2",
        "lightning batch 3",
    ]


class _SayHF(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        print(f"hf step {state.global_step}")


def test_transformers_callback_captures_console(tmp_path: Path) -> None:
    base = tmp_path / "boards"
    callback = KohakuBoardCallback(base_dir=base, capture_console=True)
    assert pickle.loads(pickle.dumps(callback)).capture_console is True
    Trainer(
        model=tiny_model(),
        args=tiny_args(tmp_path / "out", max_steps=2),
        train_dataset=TinyDataset(),
        callbacks=[callback, _SayHF()],
    ).train()
    (info,) = list_boards(base)
    with open_board(info.path) as r:
        texts = [line.text for line in r.console()]
    assert [t for t in texts if t.startswith("hf step")] == ["hf step 1", "hf step 2"]


def test_transformers_console_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOHAKUBOARD_CAPTURE_CONSOLE", "fd")
    assert KohakuBoardCallback().capture_console == "fd"
    monkeypatch.delenv("KOHAKUBOARD_CAPTURE_CONSOLE")
    assert KohakuBoardCallback().capture_console is False
