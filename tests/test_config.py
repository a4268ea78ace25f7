"""The one config cleaner (kohakuboard.config) keeps what each of its callers stored before
it was one: ``Board(config=)``/``update_config``, the integrations' hyperparameters and the
viewer's config JSON. tests/config_expected.json holds the outputs recorded from the three
cleaners as they were, over the union of the inputs each met (tests/config_cases.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from config_cases import cases, json_cases, normalized, omegaconf_cases, torch_cases

from kohakuboard.client.sanitize import jsonable_config
from kohakuboard.integrations.lightning import flatten_hparams
from kohakuboard.viewer.routes import _plain

EXPECTED = json.loads((Path(__file__).parent / "config_expected.json").read_text("utf-8"))
ALL = {**cases(), **torch_cases(), **omegaconf_cases()}


def _store(name: str, value: Any) -> Any:
    return jsonable_config({name: value})


def _describe(name: str, value: Any) -> Any:
    return flatten_hparams({name: value})


def _describe_stored(name: str, value: Any) -> Any:
    return jsonable_config(flatten_hparams({name: value}))


def _describe_single(name: str, value: Any) -> Any:
    return flatten_hparams(value)


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
    got = _plain({name: value})
    assert normalized(got) == EXPECTED["strict"][name]
    json.dumps(got, allow_nan=False)  # no NaN/Infinity tokens
