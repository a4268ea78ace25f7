"""What the series-route tests share: a spy on the Reader's series reads and one /api/series
call decoded."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kohakuboard.reader import Reader
from kohakuboard.viewer.charts import decode_binary


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the Reader's series reads by kind (full reads, views by group size, tails)."""
    seen: Counter[str] = Counter()
    for name in ("scalars", "scalars_many", "scalars_marked", "scalars_after"):
        real = getattr(Reader, name)

        def spy(self: Reader, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            out = _real(self, *args, **kw)
            seen[_name if _name != "scalars_after" or out is not None else "after_refused"] += 1
            return out

        monkeypatch.setattr(Reader, name, spy)
    real_view = Reader.scalars_view

    def view_spy(self: Reader, name: str, **kw: Any) -> Any:
        seen[f"view/{kw.get('group', 1)}"] += 1
        return real_view(self, name, **kw)

    monkeypatch.setattr(Reader, "scalars_view", view_spy)
    return seen


def get_series(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/series", params={"format": "bin", **params})
    assert response.status_code == 200, response.text
    return decode_binary(response.content)["series"][0]
