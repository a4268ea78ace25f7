"""Inputs for tests/test_config.py: every kind of value one of the config cleaners meets.

Kept apart from the test so that the expected outputs (recorded from the three cleaners as
they were before they became one) can be regenerated and compared by hand.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
from argparse import Namespace
from pathlib import PurePosixPath
from typing import Any

import numpy as np


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Opt:
    name: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.99)


@dataclasses.dataclass
class Outer:
    opt: Opt = dataclasses.field(default_factory=Opt)
    steps: int = 10


class Plain:  # the default repr holds an address
    pass


class Named:
    def __repr__(self) -> str:
        return "Named()"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Long:
    def __repr__(self) -> str:
        return "x" * 1200


def explode() -> None:
    raise AssertionError("called")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for i in range(depth):
        value = {f"d{i}": value}
    return value


def cases() -> dict[str, Any]:
    """One value per name; each cleaner gets ``{name: value}``."""
    out: dict[str, Any] = {
        "none": None,
        "true": True,
        "int": 3,
        "big_int": 2**70,
        "float": 0.25,
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "text": "adam",
        "surrogate": "img_\udcff.png",
        "nul": "a\x00b",
        "list": [1, 2.5, "x", None],
        "tuple": (0.9, 0.99),
        "set": {7},
        "frozenset": frozenset({"a"}),
        "dict": {"lr": 1e-3, "betas": [0.9, 0.99], "inner": {"x": math.nan}},
        "empty_dict": {},
        "empty_list": [],
        "int_keys": {1: "a", (1, 2): "b", None: "c"},
        "enum_key": {Color.RED: 1},
        "surrogate_key": {"k\udcff": 1},
        "deep": nested(12),
        "list_of_dicts": [{"a": 1}, {"b": [2, {"c": 3}]}],
        "dataclass": Outer(),
        "dataclass_class": Outer,
        "namespace": Namespace(a=1, b={"c": 2}),
        "mappingproxy": types.MappingProxyType({"m": 1}),
        "enum": Color.RED,
        "int_enum": Level.HIGH,
        "np_float32": np.float32(0.5),
        "np_float64": np.float64(1.5),
        "np_nan": np.float64("nan"),
        "np_int": np.int64(4),
        "np_bool": np.bool_(True),
        "np_array": np.arange(3),
        "path": PurePosixPath("/data/x"),
        "type": int,
        "function": explode,
        "lambda": lambda: None,
        "builtin": len,
        "plain_object": Plain(),
        "named_object": Named(),
        "bad_repr": BadRepr(),
        "long_repr": Long(),
        "long_text": "y" * 1200,
        "bytes": b"\x00ab",
        "range": range(3),
    }
    return out


def torch_cases() -> dict[str, Any]:
    import torch

    return {
        "tensor_scalar": torch.tensor(0.5),
        "tensor_one": torch.ones(1, 1),
        "tensor_int": torch.tensor(7),
        "tensor_matrix": torch.ones(3, 2),
        "tensor_nan": torch.tensor(float("nan")),
        "module_class": torch.nn.ReLU,
    }


def omegaconf_cases() -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {"sizes": [4, 8], "blocks": [{"kind": "conv", "width": "${sizes[1]}"}], "todo": [1, "???"]}
    )
    return {"omegaconf": cfg, "listconfig": cfg.sizes, "missing": OmegaConf.create({"m": "???"})}


def json_cases() -> dict[str, Any]:
    """What the viewer's cleaner meets: a config as a Reader returns it (parsed JSON; older
    boards or other writers may hold NaN/Infinity tokens, which Python's json reads)."""
    return {
        "none": None,
        "true": True,
        "int": 3,
        "float": 0.25,
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "text": "adam",
        "list": [1, math.nan, "x", None, [math.inf]],
        "dict": {"lr": 1e-3, "inner": {"x": -math.inf}},
        "empty": {},
        "deep": nested(12),
        "stored_nan": "nan",
    }


_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def normalized(value: Any) -> Any:
    """A cleaner's output in a form JSON keeps exactly: addresses masked, every float and
    every int that is not a plain int tagged with its type (``"<float 0.5>"``)."""
    if isinstance(value, str):
        return _ADDRESS.sub("0x?", value)
    if isinstance(value, dict):
        return {normalized(k): normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, float):
        return f"<{type(value).__name__} {float(value)!r}>"
    if value is None or type(value) in (int, bool):
        return value
    return f"<other {type(value).__name__} {value!r}>"
