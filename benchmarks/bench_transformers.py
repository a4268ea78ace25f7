"""What ``report_to="kohakuboard"`` adds to a Hugging Face Trainer step, against ``"none"`` and
``"tensorboard"``; and what its start-up hook adds to every interpreter start.

Run ``python benchmarks/bench_transformers.py`` (``--quick`` for a smoke run, ``--json PATH``
to keep the numbers). The figures in ``docs/transformers.md`` come from this script.

Per-step cost: the same Trainer run (CPU, BERT classifiers built from configs in code, synthetic
data, ``logging_steps=1``) is repeated with each reporter, interleaved, ``--repeats`` times. A
callback records the wall time between consecutive ``on_step_begin`` calls, so each interval
holds one whole step: forward, backward, optimizer, and the logging after it. The first steps
are dropped; the mean over the rest (the mean, not the median, so that a histogram every 10th
step counts) is one run's figure, and the table shows the median of those over the repeats.
KohakuBoard logs gradient histograms every 10 steps (TensorBoard's callback logs none).

Start-up: the ``.pth`` line run as site.py runs it, and ``python -c pass`` with the hook on and
off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WARMUP_STEPS = 10
REPORTERS = ("none", "tensorboard", "kohakuboard", "kohakuboard-nohist")


@dataclass(frozen=True)
class Size:
    name: str
    hidden: int
    layers: int
    seq: int
    batch: int
    steps: int


SIZES = (
    Size("xs  (h16 L2 seq16 b8)", 16, 2, 16, 8, 300),
    Size("s   (h128 L2 seq64 b16)", 128, 2, 64, 16, 160),
    Size("m   (h256 L4 seq128 b16)", 256, 4, 128, 16, 60),
)


@dataclass
class Result:
    size: str
    reporter: str
    step_ms: float  # median over repeats of the per-run mean step time
    runs_ms: list[float]
    added_ms: float | None = None  # versus "none"
    ratio_none: float | None = None  # step time / step time with "none"
    ratio_tb_added: float | None = None  # added cost / TensorBoard's added cost


def run_once(size: Size, reporter: str, workdir: Path, device: str) -> float:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())

    class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(0, 1000, (size.batch * 8, size.seq), generator=g)

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.ids[i], "labels": int(self.ids[i, 0]) % 2}

    config = BertConfig(
        vocab_size=1000,
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=max(2, size.hidden // 64),
        intermediate_size=4 * size.hidden,
        max_position_embeddings=size.seq,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    env_saved = dict(os.environ)
    report_to = reporter.split("-")[0]
    os.environ["KOHAKUBOARD_DIR"] = str(workdir / "kohakuboard")
    os.environ["KOHAKUBOARD_LOG_HISTOGRAMS"] = (
        "false" if reporter.endswith("nohist") else "gradients"
    )
    os.environ["KOHAKUBOARD_HISTOGRAM_STEPS"] = "10"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(workdir / "tb" / reporter)
    try:
        args = TrainingArguments(
            output_dir=str(workdir / "out"),
            report_to=report_to,
            max_steps=size.steps,
            logging_steps=1,
            per_device_train_batch_size=size.batch,
            save_strategy="no",
            use_cpu=device == "cpu",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
        timer = StepTimer()
        trainer = Trainer(model=model, args=args, train_dataset=Data(), callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # console printing is the same for all; drop it
        trainer.train()
    finally:
        os.environ.clear()
        os.environ.update(env_saved)
    intervals = [b - a for a, b in zip(timer.starts, timer.starts[1:], strict=False)]
    return statistics.fmean(intervals[WARMUP_STEPS:]) * 1e3


def measure(
    sizes: tuple[Size, ...], repeats: int, reporters: tuple[str, ...], device: str
) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        for size in sizes:
            runs: dict[str, list[float]] = {r: [] for r in reporters}
            for rep in range(repeats):
                order = reporters if rep % 2 == 0 else tuple(reversed(reporters))
                for reporter in order:
                    workdir = Path(tmp) / f"{len(results)}-{rep}"
                    runs[reporter].append(run_once(size, reporter, workdir, device))
                    print(
                        f"  {size.name} {reporter:18s} {runs[reporter][-1]:8.2f} ms/step",
                        file=sys.stderr,
                    )
            base = statistics.median(runs["none"])
            tb_added = (
                statistics.median(runs["tensorboard"]) - base if "tensorboard" in runs else None
            )
            for reporter in reporters:
                med = statistics.median(runs[reporter])
                added = med - base
                results.append(
                    Result(
                        size=size.name,
                        reporter=reporter,
                        step_ms=med,
                        runs_ms=runs[reporter],
                        added_ms=None if reporter == "none" else added,
                        ratio_none=med / base,
                        ratio_tb_added=(
                            added / tb_added
                            if reporter.startswith("kohakuboard") and tb_added and tb_added > 0
                            else None
                        ),
                    )
                )
    return results


def hook_startup(runs: int) -> dict[str, Any]:
    """What ``kohakuboard_hf_hook.pth`` costs an interpreter start.

    ``line_us``: running its line as site.py does (median of many, in this process);
    ``start_ms``: ``python -c pass`` with the hook on and off (alternating, medians)."""
    import site

    found = [
        Path(d) / "kohakuboard_hf_hook.pth"
        for d in [*site.getsitepackages(), site.getusersitepackages()]
    ]
    pth = next((p for p in found if p.exists()), None)
    if pth is None:
        return {"installed": False}
    # site.py skips the file's comment lines and runs the one that starts with "import"
    (line,) = [s for s in pth.read_text().splitlines() if s.startswith("import")]
    times = []
    for _ in range(runs * 50):
        saved = list(sys.meta_path)
        start = time.perf_counter()
        exec(line, {})  # noqa: S102 - exactly what site.py does with the line
        times.append(time.perf_counter() - start)
        sys.meta_path[:] = saved
    env_on = {k: v for k, v in os.environ.items() if k != "KOHAKUBOARD_NO_HF_HOOK"}
    env_off = {**env_on, "KOHAKUBOARD_NO_HF_HOOK": "1"}
    starts: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(runs):
        for key, env in (("on", env_on), ("off", env_off)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            starts[key].append(time.perf_counter() - start)
    return {
        "installed": True,
        "line_us": statistics.median(times) * 1e6,
        "line_min_us": min(times) * 1e6,
        "start_on_ms": statistics.median(starts["on"]) * 1e3,
        "start_off_ms": statistics.median(starts["off"]) * 1e3,
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", default="xs,s,m", help="comma-separated subset of xs,s,m")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the steps per run")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up hook timing")
    opts = parser.parse_args()
    wanted = set(opts.sizes.split(","))
    sizes = tuple(s for s in SIZES if s.name.split()[0] in wanted)
    repeats = opts.repeats
    if opts.steps_scale != 1.0:
        sizes = tuple(
            Size(s.name, s.hidden, s.layers, s.seq, s.batch, int(s.steps * opts.steps_scale))
            for s in sizes
        )
    if opts.quick:
        sizes = tuple(
            Size(s.name, s.hidden, s.layers, s.seq, s.batch, max(30, s.steps // 4)) for s in sizes
        )
        repeats = 1

    import torch
    import transformers

    # One intra-op thread by default: on a shared or small machine, torch's thread pool
    # oversubscribed makes every step 10x slower and the comparison meaningless.
    torch.set_num_threads(opts.threads)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, device {opts.device}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads; "
        f"{repeats} repeat(s), interleaved; logging_steps=1; kohakuboard gradient histograms every 10 steps"
    )
    results = measure(sizes, repeats, REPORTERS, opts.device)
    print()
    header = f"{'model':26s} {'report_to':20s} {'ms/step':>9s} {'added ms':>9s} {'vs none':>8s} {'vs TB added':>12s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.size:26s} {r.reporter:20s} {r.step_ms:9.2f} {fmt(r.added_ms, '9.3f')} "
            f"{fmt(r.ratio_none, '8.3f')} {fmt(r.ratio_tb_added, '12.2f')}"
        )
    startup = (
        {"installed": False, "skipped": True}
        if opts.no_startup
        else hook_startup(5 if opts.quick else 20)
    )
    print()
    if startup.get("skipped"):
        pass
    elif startup["installed"]:
        print(
            f"start-up hook: its .pth line runs in {startup['line_us']:.0f} us (median; min "
            f"{startup['line_min_us']:.0f} us) and imports nothing; `python -c pass` takes "
            f"{startup['start_on_ms']:.1f} ms with it, {startup['start_off_ms']:.1f} ms without (medians)"
        )
    else:
        print("start-up hook: not installed (pip install -e . or a wheel installs it)")
    if opts.json:
        opts.json.write_text(
            json.dumps({"steps": [asdict(r) for r in results], "startup": startup}, indent=2)
        )


if __name__ == "__main__":
    main()
