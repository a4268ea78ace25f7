"""Checks shared by the histogram tests: every payload against numpy on the same values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from kohakuboard.types._histogram_math import HistogramStats


def host_values(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).numpy().ravel()
    return np.asarray(values, dtype=np.float64).ravel()


def assert_matches_numpy(stats: HistogramStats | dict[str, Any], values: Any) -> None:
    """Counts equal numpy.histogram over the same edges; every value is accounted for;
    min/max exact, mean/std close."""
    get = (lambda k: stats[k]) if isinstance(stats, dict) else (lambda k: getattr(stats, k))
    flat = host_values(values)
    finite = flat[np.isfinite(flat)]
    edges = np.asarray(get("edges"))
    counts = np.asarray(get("counts"))
    assert np.all(np.diff(edges) >= 0)
    inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
    np.testing.assert_array_equal(counts, np.histogram(inside, bins=edges)[0])
    assert get("underflow") == np.count_nonzero(finite < edges[0])
    assert get("overflow") == np.count_nonzero(finite > edges[-1])
    assert get("nan") == np.count_nonzero(np.isnan(flat))
    assert get("posinf") == np.count_nonzero(flat == np.inf)
    assert get("neginf") == np.count_nonzero(flat == -np.inf)
    assert get("zeros") == np.count_nonzero(flat == 0)
    assert get("count") == flat.size
    total = counts.sum() + get("underflow") + get("overflow")
    assert total + get("nan") + get("posinf") + get("neginf") == flat.size
    if finite.size:
        assert (get("min"), get("max")) == (finite.min(), finite.max())
        with np.errstate(over="ignore", invalid="ignore"):
            mean, spread = finite.mean(), finite.std()
        if not np.isfinite(spread):  # numpy overflows for spans near float64's limit
            return
        assert get("mean") == pytest.approx(mean, rel=1e-6, abs=1e-6 * spread + 1e-300)
        assert get("std") == pytest.approx(spread, rel=1e-5, abs=1e-300)
    else:
        assert get("min") is get("max") is get("mean") is get("std") is None
