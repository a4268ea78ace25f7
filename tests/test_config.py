"""The one config cleaner (kohakuboard.config) keeps what each of its callers stored before
it was one: ``Board(config=)``/``update_config``, the integrations' hyperparameters and the
viewer's config JSON. tests/config_expected.json holds the outputs recorded from the three
cleaners as they were, over the union of the inputs each met (tests/config_cases.py), with
these deliberate changes made when they became one:

- ``store``: a numpy float64 NaN is stored as ``"nan"``, like a Python NaN (it was its numpy 2
  repr, ``"np.float64(nan)"``; ``"nan"`` under numpy 1); a finite one is returned as a plain
  float (it was the numpy scalar, which the wire format stores as the same float).
- ``describe``: lone surrogates are escaped by the walk itself; what the Board stores of it
  (``describe_stored``) is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from config_cases import cases, json_cases, normalized, omegaconf_cases, torch_cases

from kohakuboard.config import STRICT, flatten_config, jsonable_config, to_json

EXPECTED = json.loads((Path(__file__).parent / "config_expected.json").read_text("utf-8"))
ALL = {**cases(), **torch_cases(), **omegaconf_cases()}


def _store(name: str, value: Any) -> Any:
    return jsonable_config({name: value})


def _describe(name: str, value: Any) -> Any:
    return flatten_config({name: value}, key="hparams")


def _describe_stored(name: str, value: Any) -> Any:
    return jsonable_config(flatten_config({name: value}, key="hparams"))


def _describe_single(name: str, value: Any) -> Any:
    return flatten_config(value, key="hparams")


CLEANERS = {
    "store": _store,
    "describe": _describe,
    "describe_stored": _describe_stored,
    "describe_single": _describe_single,
}


@pytest.mark.parametrize("cleaner", sorted(CLEANERS))
@pytest.mark.parametrize("name", sorted(ALL))
def test_each_caller_keeps_its_results(cleaner: str, name: str) -> None:
    got = normalized(CLEANERS[cleaner](name, ALL[name]))
    assert got == EXPECTED[cleaner][name]


@pytest.mark.parametrize("name", sorted(json_cases()))
def test_viewer_config_is_strict_json(name: str) -> None:
    value = json_cases()[name]
    got = to_json({name: value}, STRICT)
    assert normalized(got) == EXPECTED["strict"][name]
    json.dumps(got, allow_nan=False)  # no NaN/Infinity tokens
