"""Live sync from the integrations: ``KohakuBoardLogger(remote=...)`` in a real Lightning fit
and ``report_to="kohakuboard"`` with ``KOHAKUBOARD_REMOTE``/``KOHAKUBOARD_PROJECT`` in a real
transformers Trainer, both against a real ``kobo serve``; bad settings fail when the logger or
callback is made."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))

from live_kit import (  # noqa: E402
    PROJECT,
    KoboServer,
    Team,
    compare,
    server_copy,
    wait_sync_child_done,
)

from kohakuboard.errors import InvalidRemoteError  # noqa: E402


def _synced(board: Path, srv: KoboServer, team: Team, into: Path) -> None:
    wait_sync_child_done(board)
    diffs, dups = compare(board, server_copy(team.db_url, srv.store, board.name, into))
    assert diffs == [] and dups == 0


def test_bad_remote_settings_fail_when_the_logger_or_callback_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lightning")
    pytest.importorskip("transformers")
    from kohakuboard.integrations.lightning import KohakuBoardLogger
    from kohakuboard.integrations.transformers import KohakuBoardCallback, report_to_callback

    with pytest.raises(InvalidRemoteError, match="remote='ftp://kobo' is not a server URL"):
        KohakuBoardLogger(tmp_path, remote="ftp://kobo", project=PROJECT)
    with pytest.raises(InvalidRemoteError, match="needs a server project"):
        KohakuBoardCallback(remote="https://kobo.example.com")
    monkeypatch.setenv("KOHAKUBOARD_REMOTE", "https://user:pw@kobo.example.com")
    monkeypatch.setenv("KOHAKUBOARD_PROJECT", PROJECT)
    with pytest.raises(InvalidRemoteError, match="KOHAKUBOARD_REMOTE holds credentials"):
        report_to_callback()
    assert list(tmp_path.iterdir()) == []


# Lightning 2.6 with torch 2.13 warns on every DataLoader; tiny runs trip its advice category.
@pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)
@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
def test_lightning_logger_syncs_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kobo: tuple[KoboServer, Team]
) -> None:
    pytest.importorskip("lightning")
    import lightning as L
    from lit_tiny import Tiny, data

    from kohakuboard.integrations.lightning import KohakuBoardLogger

    srv, team = kobo
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", team.tokens["editor"])
    logger = KohakuBoardLogger(tmp_path / "boards", remote=srv.url, project=PROJECT)
    trainer = L.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(), data(), data())
    _synced(Path(logger.log_dir), srv, team, tmp_path / "check")


def test_report_to_kohakuboard_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kobo: tuple[KoboServer, Team]
) -> None:
    pytest.importorskip("transformers")
    from hf_tiny import TinyDataset, tiny_args, tiny_model
    from transformers import Trainer

    srv, team = kobo
    base = tmp_path / "boards"
    monkeypatch.setenv("KOHAKUBOARD_TOKEN", team.tokens["editor"])
    monkeypatch.setenv("KOHAKUBOARD_REMOTE", srv.url)
    monkeypatch.setenv("KOHAKUBOARD_PROJECT", PROJECT)
    monkeypatch.setenv("KOHAKUBOARD_DIR", str(base))
    monkeypatch.setenv("KOHAKUBOARD_LOG_HISTOGRAMS", "false")
    args = tiny_args(tmp_path / "out", report_to="kohakuboard")
    Trainer(model=tiny_model(), args=args, train_dataset=TinyDataset()).train()
    (board,) = [p for p in base.iterdir() if (p / "board.json").exists()]
    _synced(board, srv, team, tmp_path / "check")
