"""Encode/decode cost of ``kohakuboard.wire`` against the pickle it replaced (issue 12, item 2).

Run ``python benchmarks/bench_wire.py`` (``--repeat N``). Payloads are the records the flusher
writes into the ring: one ``log_histograms`` call of 50 tensors (exact and compact, 64 bins),
50 raw arrays of 100k float32 (a record of large arrays), a 1024x1024 RGB image and a table of
1,000 rows x 5 cells. The four operations run in turn, ``--repeat`` times, and the table shows
the best time of each in microseconds (the machine this was written on is shared, and the best
of many interleaved runs is what noise disturbs least). Decode includes copying the message out
of the buffer it came from (the ring is reused once a record is decoded), which pickle's
in-band buffers do too.
Pickle is used here only as the yardstick; the package never imports it.
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kohakuboard import wire


def _histograms(precision: str) -> dict[str, Any]:
    import torch

    from kohakuboard.types import Histogram
    from kohakuboard.types._histogram_batch import HistogramBatch

    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(100_000, generator=gen) * (i + 1) for i in range(50)]
    batch = HistogramBatch(tensors, bins=64, range=None, scale="linear")
    hists = {
        f"grad/layer{i}.weight": Histogram._of_batch(batch, i, precision).to_payload()
        for i in range(50)
    }
    return _record(histograms=hists)


def _record(**parts: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"step": 10, "global_step": 10, "wall_time": time.time()}
    for key in ("scalars", "media", "tables", "histograms"):
        record[key] = parts.get(key, {})
    return record


def payloads() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(0)
    arrays = {f"a{i}": rng.standard_normal(100_000).astype(np.float32) for i in range(50)}
    image = rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    table = {
        "columns": ["id", "label", "score", "ok", "note"],
        "rows": [[i, f"class{i % 10}", i / 7, i % 2 == 0, None] for i in range(1000)],
    }
    media = {"kind": "image", "caption": "x", "array": image, "data": None, "ext": None}
    return {
        "50 histograms, exact": _histograms("exact"),
        "50 histograms, compact": _histograms("compact"),
        "50 x 100k float32 arrays": _record(histograms={"raw": arrays}),
        "1024x1024 RGB image": _record(
            media={"img": [{**media, "fps": None, "sample_rate": None}]}
        ),
        "table 1000 x 5": _record(tables={"t": table}),
    }


def best_us(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - started)
    return [b * 1e6 for b in best]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    print(
        "| payload | bytes pickle / wire | encode pickle | encode wire | decode pickle | decode wire |"
    )
    print("|---|---|---|---|---|---|")
    for name, obj in payloads().items():
        p = pickle.dumps(obj, protocol=5)
        w = wire.encode(obj)
        view = memoryview(w)
        cells = best_us(
            [
                lambda o=obj: pickle.dumps(o, protocol=5),
                lambda o=obj: wire.encode(o),
                lambda b=p: pickle.loads(b),
                lambda v=view: wire.decode(v),
            ],
            args.repeat,
        )
        print(
            f"| {name} | {len(p):,} / {len(w):,} | "
            + " | ".join(f"{c:,.0f} us" for c in cells)
            + " |"
        )


if __name__ == "__main__":
    main()
