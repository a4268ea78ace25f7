"""The committed web app: built from the current viewer_ui/ sources, self-contained, small.

Pure Python: no Node.js needed. When a test here fails after editing viewer_ui/, run
``nox -s ui`` (npm ci + vite build + record the hash) and commit kohakuboard/viewer/static/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kohakuboard.viewer.bundle import HASH_FILE, UI_DIR, recorded_hash, source_files, source_hash
from kohakuboard.viewer.static import STATIC_DIR, check_bundle

BUDGET_BYTES = 300_000  # every file of the bundle together, uncompressed

# URLs that are names, not places: nothing is ever fetched from them.
NOT_FETCHED = {
    "http://www.w3.org/2000/svg",  # XML namespaces (Vue's DOM renderer, the favicon)
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/1998/Math/MathML",
    "http://www.w3.org/XML/1998/namespace",
}
# Vue passes this documentation link to error handlers as text (the app never loads it).
VUE_ERROR_DOCS = re.compile(r"https://vuejs\.org/error-reference/#runtime-\$\{\w+\}")
URL = re.compile(r"https?://[^\s\"'`<>()]*", re.I)
COMMENT = re.compile(r"/\*.*?\*/|<!--.*?-->", re.S)
# loading from elsewhere, with or without a scheme ("//host/x" is another site too)
FETCHING = re.compile(
    r"(?:src|href|action)\s*=\s*[\"']?\s*(?:https?:)?//"
    r"|url\(\s*[\"']?\s*(?:https?:)?//"
    r"|@import\s+[\"']?(?:https?:)?//"
    r"|(?:fetch|import|EventSource|WebSocket)\(\s*[\"'`](?:https?:|wss?:)?//",
    re.I,
)


def bundle_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file() and p.name != "SOURCE_HASH")


@pytest.mark.skipif(
    not UI_DIR.is_dir(), reason="viewer_ui/ sources are not in an installed package"
)
def test_bundle_was_built_from_the_current_sources() -> None:
    assert source_files(), f"no sources found under {UI_DIR}"
    assert (UI_DIR / "package-lock.json") in source_files()
    recorded = recorded_hash()
    assert recorded is not None, f"{HASH_FILE} is missing: run `nox -s ui`"
    assert recorded == source_hash(), (
        "viewer_ui/ changed since kohakuboard/viewer/static/ was built: run `nox -s ui` "
        "and commit the rebuilt bundle"
    )


def test_hash_ignores_line_endings(tmp_path: Path) -> None:
    for name, text in (("a", b"one\ntwo\n"), ("b", b"one\r\ntwo\r\n")):
        (tmp_path / name / "src").mkdir(parents=True)
        (tmp_path / name / "src" / "x.js").write_bytes(text)
    assert source_hash(tmp_path / "a") == source_hash(tmp_path / "b")
    (tmp_path / "b" / "src" / "x.js").write_bytes(b"one\ntwo!\n")
    assert source_hash(tmp_path / "a") != source_hash(tmp_path / "b")


def test_bundle_is_complete() -> None:
    assert check_bundle() == STATIC_DIR
    index = (STATIC_DIR / "index.html").read_text()
    assert re.search(r'<script type="module" crossorigin src="/assets/index-[\w-]+\.js">', index)
    assert "<script>" not in index and "style=" not in index  # CSP: no inline code or styles


def test_bundle_references_no_external_url() -> None:
    found = []
    for path in bundle_files():
        text = COMMENT.sub("", path.read_text(encoding="utf-8", errors="replace"))
        assert not FETCHING.search(text), f"{path.name} loads something from another site"
        for url in URL.findall(text):
            if url in NOT_FETCHED or VUE_ERROR_DOCS.fullmatch(url):
                continue
            found.append(f"{path.relative_to(STATIC_DIR)}: {url}")
    assert not found, "external URLs in the bundle:\n" + "\n".join(found)


def test_bundle_is_small() -> None:
    total = sum(p.stat().st_size for p in bundle_files())
    assert total <= BUDGET_BYTES, f"the bundle grew to {total} bytes (budget {BUDGET_BYTES})"
