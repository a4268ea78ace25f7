"""transformers integration: KohakuBoardCallback with a real Trainer, report_to="kohakuboard"
in fresh interpreters, the start-up hook, and a 2-process run (packaging:
tests/test_packaging.py).

Everything runs on CPU with a tiny randomly initialised model (``hf_tiny``); nothing is
downloaded."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from hf_tiny import TinyDataset, tiny_args, tiny_model  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from kohakuboard import list_boards, open_board  # noqa: E402
from kohakuboard.integrations.transformers import KohakuBoardCallback  # noqa: E402

SUBPROCESS_TIMEOUT = 240  # importing torch + transformers takes ~15 s on a loaded 2-core box


def series(reader: Any, name: str) -> list[tuple[int, float]]:
    table = reader.scalars(name)
    return list(
        zip(table.column("global_step").to_pylist(), table.column("value").to_pylist(), strict=True)
    )


def only_board(base: Path) -> Any:
    boards = list_boards(base)
    assert len(boards) == 1, f"expected one board in {base}, found {[b.id for b in boards]}"
    return open_board(boards[0].path)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOHAKUBOARD_")}
    # One torch thread: on a small shared machine an oversubscribed pool makes steps 10x slower.
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    return env


def run_script(tmp_path: Path, source: str, *args: str, env: dict[str, str] | None = None) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


class Probe(TrainerCallback):
    """Records what the Trainer does, to check the callback against it."""

    def __init__(self) -> None:
        self.pre_optimizer_steps: list[int] = []
        self.loss_steps: list[int] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.pre_optimizer_steps.append(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss_steps.append(state.global_step)


# -- one real run, checked by several tests --------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """report_to="kohakuboard" AND an explicit callback on one Trainer; 6 steps, loss every 2,
    histograms every 2, evaluation and a checkpoint at step 3; then evaluate() once more."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see clean_env()
    tmp = tmp_path_factory.mktemp("trained")
    base = tmp / "boards"
    explicit = KohakuBoardCallback(
        base_dir=base, name="tiny", project="hf", log_histograms="all", histogram_steps=2
    )
    probe = Probe()
    args = tiny_args(
        tmp / "out",
        report_to="kohakuboard",
        max_steps=6,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
        save_only_model=True,
    )
    model = tiny_model()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=TinyDataset(24),
        eval_dataset=TinyDataset(8, seed=1),
        callbacks=[explicit, probe],
    )
    try:
        trainer.train()
        status_after_train = only_board(base).status()
        trainer.evaluate()
    finally:
        torch.set_num_threads(threads)
    yield {
        "base": base,
        "trainer": trainer,
        "callback": explicit,
        "probe": probe,
        "reader": only_board(base),
        "status_after_train": status_after_train,
    }


def test_report_to_and_explicit_callback_write_one_board_with_explicit_settings(
    trained: dict[str, Any],
) -> None:
    kinds = [type(cb).__name__ for cb in trained["trainer"].callback_handler.callbacks]
    assert kinds.count("_ReportToCallback") == 1 and kinds.count("KohakuBoardCallback") == 1
    reader = trained["reader"]  # only_board() asserted there is exactly one
    assert reader.name == "tiny"
    assert reader.info().project == "hf"
    assert reader.status() == "finished"


def test_training_metrics_at_the_trainers_global_step(trained: dict[str, Any]) -> None:
    reader = trained["reader"]
    history = trained["trainer"].state.log_history
    expected = [(h["step"], h["loss"]) for h in history if "loss" in h]
    assert [s for s, _ in expected] == [2, 4, 6]
    got = series(reader, "train/loss")
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])
    assert [s for s, _ in series(reader, "train/learning_rate")] == [2, 4, 6]
    assert [s for s, _ in series(reader, "train/train_loss")] == [6]


def test_eval_metrics_during_training_and_after_train_end_append(trained: dict[str, Any]) -> None:
    reader = trained["reader"]
    assert trained["status_after_train"] == "finished"
    history = trained["trainer"].state.log_history
    expected = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    assert [s for s, _ in expected] == [3, 6, 6]  # steps 3 and 6 in training, then evaluate()
    got = series(reader, "eval/loss")
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])


def test_histograms_land_on_the_steps_whose_loss_is_logged(trained: dict[str, Any]) -> None:
    reader, probe = trained["reader"], trained["probe"]
    # What the integration relies on: the hook runs at global_step G, the loss of that optimizer
    # step is logged at G + 1.
    assert probe.pre_optimizer_steps == [0, 1, 2, 3, 4, 5]
    assert probe.loss_steps == [2, 4, 6]
    names = reader.keys("histogram")
    grad_names = [n for n in names if n.startswith("grad/")]
    param_names = [n for n in names if n.startswith("param/")]
    model = trained["trainer"].model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert {f"param/{n}" for n in trainable} == set(param_names)
    assert grad_names and {n[len("grad/") :] for n in grad_names} <= set(trainable)
    loss_steps = [s for s, _ in series(reader, "train/loss")]
    for name in (grad_names[0], grad_names[-1], param_names[0]):
        assert [row.global_step for row in reader.histograms(name)] == loss_steps, name


def test_checkpoints_table(trained: dict[str, Any]) -> None:
    reader = trained["reader"]
    rows = reader.tables("checkpoints")
    assert [r.global_step for r in rows] == [3, 6]
    assert rows[-1].columns == ["global_step", "path", "best"]
    cells = rows[-1].rows
    out = Path(trained["trainer"].args.output_dir).resolve()
    assert [c[:2] for c in cells] == [
        [3, str(out / "checkpoint-3")],
        [6, str(out / "checkpoint-6")],
    ]
    assert all(Path(c[1]).is_dir() for c in cells)


def test_config_merges_model_config_and_arguments(trained: dict[str, Any]) -> None:
    config = trained["reader"].config()
    assert config["hidden_size"] == 16  # model.config
    assert config["num_hidden_layers"] == 2
    assert config["learning_rate"] == pytest.approx(1e-3)  # args
    assert config["max_steps"] == 6
    assert config["report_to"] == ["kohakuboard"]


def test_callback_pickles_without_its_board(trained: dict[str, Any]) -> None:
    callback = trained["callback"]
    clone = pickle.loads(pickle.dumps(callback))
    assert clone.board is None
    assert (clone.name, clone.project, clone.board_id) == ("tiny", "hf", callback.board_id)
    assert (clone.log_histograms, clone.histogram_steps) == ("all", 2)


# -- smaller unit checks ---------------------------------------------------------------------------
class FakeState:
    def __init__(self, global_step: int = 0, zero: bool = True) -> None:
        self.global_step = global_step
        self.is_world_process_zero = zero
        self.is_hyper_param_search = False
        self.logging_steps = 1
        self.best_model_checkpoint = None


def test_only_world_process_zero_writes(tmp_path: Path) -> None:
    callback = KohakuBoardCallback(base_dir=tmp_path / "boards")
    args = tiny_args(tmp_path / "out")
    state = FakeState(zero=False)
    callback.on_train_begin(args, state, None, model=tiny_model())
    callback.on_log(args, state, None, logs={"loss": 1.0})
    callback.on_save(args, state, None)
    callback.on_train_end(args, state, None)
    assert callback.board is None
    assert not (tmp_path / "boards").exists()


def test_sharded_or_missing_gradients_skip_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = KohakuBoardCallback(base_dir=tmp_path / "boards", histogram_steps=1)
    args = tiny_args(tmp_path / "out")
    model = tiny_model()  # no backward: every .grad is None, as under DeepSpeed ZeRO
    state = FakeState()
    caplog.set_level(logging.WARNING, logger="kohakuboard.integrations.transformers")
    callback.on_train_begin(args, state, None, model=model)
    for step in range(3):
        state.global_step = step
        callback.on_pre_optimizer_step(args, state, None, model=model)
    first: Any = next(iter(model.parameters()))
    first.ds_numel = 10  # like a ZeRO-3 partitioned parameter
    callback.on_pre_optimizer_step(args, state, None, model=model)
    callback.on_train_end(args, state, None)
    skipped = [r for r in caplog.records if "histograms skipped" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in caplog.records]
    assert only_board(tmp_path / "boards").keys("histogram") == []


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KOHAKUBOARD_DIR", str(tmp_path / "env-boards"))
    monkeypatch.setenv("KOHAKUBOARD_PROJECT", "envproj")
    monkeypatch.setenv("KOHAKUBOARD_NAME", "envname")
    monkeypatch.setenv("KOHAKUBOARD_LOG_HISTOGRAMS", "parameters")
    monkeypatch.setenv("KOHAKUBOARD_HISTOGRAM_STEPS", "7")
    callback = KohakuBoardCallback()
    assert (str(callback.base_dir), callback.project, callback.name) == (
        str(tmp_path / "env-boards"),
        "envproj",
        "envname",
    )
    assert (callback.log_histograms, callback.histogram_steps) == ("parameters", 7)
    off = KohakuBoardCallback(project="arg", log_histograms=False)
    assert (off.project, off.log_histograms) == ("arg", None)


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        (
            "KOHAKUBOARD_LOG_HISTOGRAMS",
            "weights",
            "KOHAKUBOARD_LOG_HISTOGRAMS must be one of 'gradients', 'parameters', 'all', "
            "'false', got 'weights'",
        ),
        ("KOHAKUBOARD_HISTOGRAM_STEPS", "0", "KOHAKUBOARD_HISTOGRAM_STEPS='0' is not a positive"),
    ],
)
def test_bad_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, match: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=match):
        KohakuBoardCallback()


def test_default_histogram_steps_are_steps_whose_loss_is_logged() -> None:
    callback = KohakuBoardCallback()
    for logging_steps, expected in [(1, 100), (30, 120), (500, 500)]:
        state = FakeState()
        state.logging_steps = logging_steps
        args = TrainingArguments(output_dir="unused", logging_steps=logging_steps, report_to="none")
        plan = callback._histogram_plan(args, state)
        assert plan is not None and plan.every == expected
    # logging_strategy="epoch", 30 steps an epoch, 250 steps: every 4th epoch end, and the
    # last step if it ends such an epoch (250 ends the 9th: no)
    state = FakeState()
    state.max_steps = 250
    args = TrainingArguments(output_dir="unused", logging_strategy="epoch", report_to="none")
    plan = callback._histogram_plan(args, state, train_dataloader=range(30))
    assert plan is not None and [s for s in range(1, 251) if plan.due(s)] == [120, 240]
    state.max_steps = 230  # ends the 8th epoch
    plan = callback._histogram_plan(args, state, train_dataloader=range(30))
    assert plan is not None and [s for s in range(1, 231) if plan.due(s)] == [120, 230]
    args = TrainingArguments(output_dir="unused", logging_strategy="no", report_to="none")
    plan = callback._histogram_plan(args, state)
    assert plan is not None and [s for s in range(1, 231) if plan.due(s)] == [230]


# -- checkpoints, histogram steps per logging strategy, the registered class ----------------------
def test_checkpoints_table_drops_what_save_total_limit_removed(tmp_path: Path) -> None:
    callback = KohakuBoardCallback(base_dir=tmp_path / "boards", log_histograms=False)
    args = tiny_args(
        tmp_path / "out",
        max_steps=4,
        save_strategy="steps",
        save_steps=1,
        save_total_limit=2,
        save_only_model=True,
    )
    Trainer(
        model=tiny_model(), args=args, train_dataset=TinyDataset(16), callbacks=[callback]
    ).train()
    out = Path(args.output_dir).resolve()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    with only_board(tmp_path / "boards") as reader:
        tables = reader.tables("checkpoints")
        assert [table.global_step for table in tables] == [1, 2, 3, 4]
        assert [[row[0] for row in table.rows] for table in tables] == [[1], [1, 2], [2, 3], [3, 4]]
        assert [row[1] for row in tables[-1].rows] == [
            str(out / "checkpoint-3"),
            str(out / "checkpoint-4"),
        ]


def test_checkpoints_table_after_the_trainers_last_cleanup(tmp_path: Path) -> None:
    # save_total_limit=1 with load_best_model_at_end keeps the best and the newest folder while
    # training, then deletes the newest one if it is not the best, after the last on_save.
    callback = KohakuBoardCallback(base_dir=tmp_path / "boards", log_histograms=False)
    args = tiny_args(
        tmp_path / "out",
        max_steps=4,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    trainer = Trainer(
        model=tiny_model(),
        args=args,
        train_dataset=TinyDataset(16),
        eval_dataset=TinyDataset(8, seed=1),
        callbacks=[callback],
    )
    trainer.train()
    left = sorted(str(p.resolve()) for p in Path(args.output_dir).glob("checkpoint-*"))
    with only_board(tmp_path / "boards") as reader:
        rows = reader.tables("checkpoints")[-1].rows
        assert sorted(row[1] for row in rows) == left
        assert [row[2] for row in rows] == [True] * len(rows)  # what is left is the best


@pytest.mark.parametrize(
    ("strategy", "overrides", "expected"),
    [
        # 30 steps an epoch, loss logged at each epoch's end; default: the first epoch end at
        # least 100 steps in, then every 4 epochs (120 steps)
        (
            "epoch",
            {"num_train_epochs": 4, "max_steps": -1, "per_device_train_batch_size": 1},
            [120],
        ),
        # nothing logged but the summary at the last step
        ("no", {"max_steps": 3}, [3]),
    ],
)
def test_default_histograms_follow_the_logging_strategy(
    tmp_path: Path, strategy: str, overrides: dict[str, Any], expected: list[int]
) -> None:
    callback = KohakuBoardCallback(base_dir=tmp_path / "boards")
    args = tiny_args(tmp_path / "out", logging_strategy=strategy, **overrides)
    Trainer(
        model=tiny_model(), args=args, train_dataset=TinyDataset(30), callbacks=[callback]
    ).train()
    with only_board(tmp_path / "boards") as reader:
        logged = {s for s, _ in series(reader, "train/train_loss")}
        if strategy == "epoch":
            logged |= {s for s, _ in series(reader, "train/loss")}
            assert sorted(logged) == [30, 60, 90, 120]
        steps = [row.global_step for row in reader.histograms("grad/classifier.weight")]
        assert steps == expected
        assert set(steps) <= logged  # every histogram on a step whose loss is logged


def test_the_registered_class_finds_the_callback_the_trainer_holds(tmp_path: Path) -> None:
    # trainer.pop_callback/remove_callback(INTEGRATION_TO_CALLBACK[name]) work for TensorBoard's
    # callback; they must work for ours too.
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    registered = INTEGRATION_TO_CALLBACK["kohakuboard"]
    trainer = Trainer(model=tiny_model(), args=tiny_args(tmp_path / "out", report_to="kohakuboard"))
    (held,) = [
        cb for cb in trainer.callback_handler.callbacks if isinstance(cb, KohakuBoardCallback)
    ]
    assert isinstance(held, registered)
    assert trainer.pop_callback(registered) is held
    assert not [
        cb for cb in trainer.callback_handler.callbacks if isinstance(cb, KohakuBoardCallback)
    ]
    trainer.add_callback(held)
    trainer.remove_callback(registered)
    assert not [
        cb for cb in trainer.callback_handler.callbacks if isinstance(cb, KohakuBoardCallback)
    ]
    explicit = KohakuBoardCallback(base_dir=tmp_path / "boards")  # like TensorBoardCallback()
    assert isinstance(explicit, registered) and type(explicit) is KohakuBoardCallback
    assert type(pickle.loads(pickle.dumps(explicit))) is KohakuBoardCallback


# -- report_to from the command line in a fresh interpreter ----------------------------------------
FRESH_SCRIPT = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from hf_tiny import TinyDataset, tiny_model
from transformers import HfArgumentParser, Trainer, TrainingArguments

(args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(sys.argv[1:])
print("REPORT_TO", args.report_to)
print("IMPORTED_BEFORE_TRAINER", any(m.startswith("kohakuboard.") or m == "kohakuboard" for m in sys.modules))
trainer = Trainer(model=tiny_model(), args=args, train_dataset=TinyDataset(16))
trainer.train()
"""


def test_report_to_from_the_command_line_with_hfargumentparser(tmp_path: Path) -> None:
    argv = [
        "--output_dir",
        "out",
        "--report_to",
        "kohakuboard",
        "--max_steps",
        "2",
        "--logging_steps",
        "1",
    ]
    argv += [
        "--use_cpu",
        "--disable_tqdm",
        "True",
        "--per_device_train_batch_size",
        "4",
        "--save_strategy",
        "no",
    ]
    argv += ["--run_name", "from-cli"]
    out = run_script(
        tmp_path, FRESH_SCRIPT, *argv, env=clean_env(KOHAKUBOARD_DIR=str(tmp_path / "boards"))
    )
    assert "REPORT_TO ['kohakuboard']" in out
    reader = only_board(tmp_path / "boards")
    assert reader.name == "from-cli"  # args.run_name names the board
    assert [s for s, _ in series(reader, "train/loss")] == [1, 2]


# -- the start-up hook, against a stand-in transformers (no torch: fast) ---------------------------
FAKE_UTILS = """
INTEGRATION_TO_CALLBACK = {"tensorboard": object}
def get_available_reporting_integrations():
    return ["tensorboard"]
"""


@pytest.fixture
def fake_transformers(tmp_path: Path) -> Path:
    root = tmp_path / "fake"
    pkg = root / "transformers" / "integrations"
    pkg.mkdir(parents=True)
    (root / "transformers" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "integration_utils.py").write_text(FAKE_UTILS)
    return root


HOOK_CHECK = """
import sys
import transformers.integrations.integration_utils as iu
print("REGISTERED", "kohakuboard" in iu.INTEGRATION_TO_CALLBACK)
print("ALL", iu.get_available_reporting_integrations())
print("LOADER", type(iu.__loader__).__name__, type(iu.__spec__.loader).__name__)
import kohakuboard
print("AFTER_IMPORT", "kohakuboard" in iu.INTEGRATION_TO_CALLBACK)
"""


def hook_run(fake: Path, source: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", source],
        env=clean_env(PYTHONPATH=str(fake), **env),
        cwd=fake,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout


def test_startup_hook_registers_when_transformers_loads(fake_transformers: Path) -> None:
    out = hook_run(fake_transformers, HOOK_CHECK)
    assert "REGISTERED True" in out
    assert "ALL ['tensorboard', 'kohakuboard']" in out  # report_to="all" includes it too
    assert "LOADER SourceFileLoader SourceFileLoader" in out  # the wrapper does not stay behind


def test_startup_hook_off_switch_and_import_kohakuboard_fallback(fake_transformers: Path) -> None:
    out = hook_run(fake_transformers, HOOK_CHECK, KOHAKUBOARD_NO_HF_HOOK="1")
    assert "REGISTERED False" in out
    assert "AFTER_IMPORT True" in out  # import kohakuboard registers an already loaded module
    later = hook_run(
        fake_transformers,
        "import kohakuboard, transformers.integrations.integration_utils as iu;"
        "print('LATER', 'kohakuboard' in iu.INTEGRATION_TO_CALLBACK)",
        KOHAKUBOARD_NO_HF_HOOK="1",
    )
    assert "LATER True" in later  # ... and one loaded after it


START_PROBE = (
    "import sys; print(sorted(sys.modules)); "
    "print([type(f).__name__ if not isinstance(f, type) else f.__name__ for f in sys.meta_path])"
)


def test_startup_hook_imports_nothing_and_the_off_switch_removes_it() -> None:
    def start(**env: str) -> tuple[set[str], str]:
        proc = subprocess.run(
            [sys.executable, "-c", START_PROBE],
            env=clean_env(**env),
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        modules, finders = proc.stdout.splitlines()
        return set(eval(modules)), finders

    with_hook, finders_on = start()
    without, finders_off = start(KOHAKUBOARD_NO_HF_HOOK="1")
    assert "KohakuBoardHFHook" in finders_on, "the start-up hook is not installed: pip install -e ."
    assert "KohakuBoardHFHook" not in finders_off
    assert with_hook == without  # not one module more at start-up


def test_a_broken_hook_module_never_breaks_importing_transformers(
    tmp_path: Path, fake_transformers: Path
) -> None:
    (tmp_path / "kohakuboard_hf_hook.py").write_text("raise RuntimeError('broken')\n")
    code = (
        "import transformers.integrations.integration_utils as iu; "
        "print('kohakuboard' in iu.INTEGRATION_TO_CALLBACK)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{fake_transformers}"),
        cwd=tmp_path,  # not the checkout, whose kohakuboard_hf_hook.py would come first
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "False" and proc.stderr == "", proc.stderr


# Packaging (the .pth file in wheels, sdists and editable installs): tests/test_packaging.py.


# -- two processes (torchrun, gloo on CPU): one board ----------------------------------------------
DDP_SCRIPT = f"""
import os, sys
sys.path.insert(0, {str(HERE)!r})
from hf_tiny import TinyDataset, tiny_model, tiny_args
from transformers import Trainer
args = tiny_args("out", report_to="kohakuboard", ddp_backend="gloo", max_steps=2)
trainer = Trainer(model=tiny_model(), args=args, train_dataset=TinyDataset(16))
trainer.train()
# A file per rank: both ranks share one stdout pipe, so printed lines can interleave.
with open("rank" + os.environ["RANK"] + ".txt", "w") as out:
    out.write(str(trainer.args.world_size))
"""


def test_two_processes_write_one_board(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT), encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
        ],
        cwd=tmp_path,
        env=clean_env(KOHAKUBOARD_DIR=str(tmp_path / "boards")),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["2", "2"]
    reader = only_board(tmp_path / "boards")
    assert [s for s, _ in series(reader, "train/loss")] == [1, 2]
    assert reader.status() == "finished"


# -- the example: report_to by name in a fresh interpreter -----------------------------------------
def test_report_to_by_name_in_a_fresh_interpreter_without_import(tmp_path: Path) -> None:
    """The example passes report_to="kohakuboard" to TrainingArguments and imports kohakuboard
    only after training (to print where the board went)."""
    example = REPO / "examples" / "hf_trainer_tiny.py"
    source = example.read_text(encoding="utf-8")
    assert 'report_to="kohakuboard"' in source
    assert source.index("from kohakuboard") > source.index("trainer.evaluate()")
    assert source.count("import kohakuboard") == 0
    argv = [
        "--base-dir",
        str(tmp_path / "boards"),
        "--steps",
        "4",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(
        [sys.executable, str(example), *argv],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reader = only_board(tmp_path / "boards")
    assert str(reader.path) in proc.stdout
    assert reader.name == "hf-trainer-tiny" and reader.status() == "finished"
    assert [s for s, _ in series(reader, "train/loss")] == [1, 2, 3, 4]
    assert [s for s, _ in series(reader, "eval/loss")] == [1, 2, 3, 4, 4]  # + evaluate() after
