"""The media page in a real browser: images at the slider's step with captions, keyboard and
Shift-sync across cards, fit/actual size, the large view, video and audio. Screenshots go to
test-artifacts/viewer/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, Media
from kohakuboard.reader import list_boards
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

PREDICTION = "samples/prediction"  # one image per epoch, captioned "epoch N"
GRID = "samples/grid"  # six images at each of the last two epochs


def one_run(base: Path) -> str:
    return list_boards(base)[0].id


def ready(tab: Page, key: str) -> Any:
    sel = f'.media-card[data-key="{key}"][data-state="ready"]'
    tab.page.wait_for_selector(sel)
    return tab.page.locator(sel)


def step_of(card: Any) -> int:
    return int(card.get_attribute("data-step"))


def images_loaded(tab: Page, card: Any) -> None:
    card.locator("img >> nth=0").wait_for()
    tab.page.wait_for_function(
        "els => els.length && els.every(i => i.complete && i.naturalWidth > 0)",
        arg=card.locator("img").element_handles(),
    )


def url_steps(tab: Page) -> dict[str, int]:
    return json.loads(tab.query().get("ms", ["{}"])[0])


def test_slider_and_keys_move_the_step(
    demo_server: ViewerThread, demo_base: Path, tab: Page
) -> None:
    tab.page.goto(f"{demo_server.url}?p=media&b={one_run(demo_base)}")
    pred = ready(tab, PREDICTION)
    images_loaded(tab, pred)
    assert pred.get_attribute("data-steps") == "6"
    latest = step_of(pred)
    assert pred.locator("figcaption").inner_text() == "epoch 5"
    src = pred.locator("img").get_attribute("src") or ""
    query = parse_qs(urlsplit(src).query)
    logged = pred.locator(".media-run").get_attribute("data-step")  # the log() step shown
    assert urlsplit(src).path == "/api/media/file" and query["step"] == [logged]
    tab.shot("latest")
    # the slider: one position back
    slider = pred.locator('input[type="range"]')
    slider.focus()
    tab.page.keyboard.press("ArrowLeft")
    wait_until(lambda: step_of(pred) < latest, what="the previous step")
    previous = step_of(pred)
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 4", what="its caption")
    src = pred.locator("img").get_attribute("src") or ""
    logged = pred.locator(".media-run").get_attribute("data-step")
    assert parse_qs(urlsplit(src).query)["step"] == [logged]
    images_loaded(tab, pred)
    wait_until(lambda: url_steps(tab) == {PREDICTION: previous}, what="ms in the URL")
    # arrow keys on the focused card (not the slider)
    pred.focus()
    tab.page.keyboard.press("ArrowLeft")
    tab.page.keyboard.press("ArrowLeft")
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 2", what="two back")
    tab.page.keyboard.press("ArrowRight")
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 3", what="one on")
    chosen = step_of(pred)
    wait_until(lambda: url_steps(tab) == {PREDICTION: chosen}, what="ms in the URL")
    # dragging the slider to its start
    box = slider.bounding_box()
    assert box is not None
    tab.page.mouse.click(box["x"] + 2, box["y"] + box["height"] / 2)
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 0", what="the start")
    # a reload keeps the chosen step
    first = step_of(pred)
    wait_until(lambda: url_steps(tab) == {PREDICTION: first}, what="ms in the URL")
    tab.page.reload()
    pred = ready(tab, PREDICTION)
    assert step_of(pred) == first
    assert pred.locator("figcaption").inner_text() == "epoch 0"


def test_shift_moves_every_card(demo_server: ViewerThread, demo_base: Path, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=media&b={one_run(demo_base)}")
    pred = ready(tab, PREDICTION)
    grid = ready(tab, GRID)
    images_loaded(tab, grid)
    assert grid.locator("img").count() == 6
    grid_steps = int(grid.get_attribute("data-steps") or 0)
    assert grid_steps == 2
    grid_latest = step_of(grid)
    # without Shift only the focused card moves
    pred.focus()
    tab.page.keyboard.press("ArrowLeft")
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 4", what="one back")
    assert step_of(grid) == grid_latest
    # with Shift every card goes to the same step, the nearest one it has
    epoch4 = step_of(pred)
    tab.page.keyboard.press("Shift+ArrowRight")
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 5", what="shift on")
    tab.page.keyboard.press("Shift+ArrowLeft")
    wait_until(lambda: step_of(grid) == epoch4, what="the grid to follow")
    tab.page.keyboard.press("Shift+ArrowLeft")  # epoch 3: the grid has nothing before epoch 4
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 3", what="epoch 3")
    assert step_of(grid) == epoch4
    now = step_of(pred)
    wait_until(lambda: url_steps(tab).get(PREDICTION) == now, what="ms in the URL")
    steps = url_steps(tab)
    assert steps[GRID] == now  # the step asked for; the card shows its nearest
    assert all(v == now for v in steps.values())
    # Shift held on a slider click moves the others too
    tab.page.keyboard.down("Shift")
    slider = grid.locator('input[type="range"]')
    box = slider.bounding_box()
    assert box is not None
    tab.page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    tab.page.keyboard.up("Shift")
    wait_until(lambda: step_of(grid) == grid_latest, what="the grid at its end")
    wait_until(lambda: pred.locator("figcaption").inner_text() == "epoch 5", what="sync by drag")
    tab.shot("synced")


def test_fit_actual_and_large_view(demo_server: ViewerThread, demo_base: Path, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=media&b={one_run(demo_base)}")
    pred = ready(tab, PREDICTION)
    images_loaded(tab, pred)
    img = pred.locator("img")
    natural = img.evaluate("i => i.naturalWidth")
    assert natural == 64
    fitted = img.bounding_box()
    assert fitted is not None and fitted["width"] > natural  # grown to the card's column
    tab.shot("fit")
    tab.page.click('.media-fit button[data-fit="actual"]')
    wait_until(lambda: tab.query().get("mf") == ["actual"], what="mf in the URL")
    wait_until(lambda: round(img.bounding_box()["width"]) == natural, what="the natural size")
    tab.shot("actual")
    tab.page.reload()
    pred = ready(tab, PREDICTION)
    images_loaded(tab, pred)
    assert round(pred.locator("img").bounding_box()["width"]) == natural
    tab.page.click('.media-fit button[data-fit="fit"]')
    wait_until(lambda: "mf" not in tab.query(), what="mf gone from the URL")
    # click: the image large; Esc closes it
    pred.locator("img").click()
    big = tab.page.locator(".media-lightbox img")
    big.wait_for()
    assert big.get_attribute("src") == pred.locator("img").get_attribute("src")
    assert (big.bounding_box() or {"width": 0})["width"] > 256
    assert "epoch 5" in tab.page.locator(".media-lightbox figcaption").inner_text()
    tab.shot("large")
    tab.page.keyboard.press("Escape")
    tab.page.locator(".media-lightbox").wait_for(state="detached")


def test_video_and_audio(demo_server: ViewerThread, demo_base: Path, tab: Page) -> None:
    tab.page.goto(f"{demo_server.url}?p=media&theme=dark&b={one_run(demo_base)}")
    video = ready(tab, "samples/rollout").locator('.media-item[data-kind="video"]')
    player = video.locator("img, video")
    assert player.count() == 1
    audio = ready(tab, "samples/tone").locator('.media-item[data-kind="audio"] audio')
    assert audio.get_attribute("controls") is not None
    assert tab.page.locator(".media-item figcaption", has_text="Hz").count() == 1
    for element in (player, audio):
        src = element.get_attribute("src") or ""
        assert src.startswith("/api/media/file?")  # same origin (CSP: no data:/blob:)
        status, kind = tab.page.evaluate(
            "u => fetch(u).then(r => [r.status, r.headers.get('content-type')])", src
        )
        assert status == 200, src
        assert kind.split("/")[0] in {"image", "video", "audio"}
    if player.evaluate("e => e.tagName") == "IMG":  # a GIF
        tab.page.wait_for_function(
            "i => i.complete && i.naturalWidth > 0", arg=player.element_handle()
        )
    assert tab.page.evaluate("document.documentElement.dataset.theme") == "dark"
    tab.page.locator('.media-card[data-key="samples/rollout"]').scroll_into_view_if_needed()
    tab.shot("dark-video-audio")


@pytest.fixture(scope="module")
def tones_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One audio key logged at three steps."""
    base = tmp_path_factory.mktemp("tones")
    t = np.linspace(0, 2, 32_000, dtype=np.float32)
    with Board(name="tones", base_dir=base) as board:
        for step in range(3):
            tone = 0.3 * np.sin(2 * np.pi * 220 * (step + 1) * t)
            board.log(**{"av/tone": Media(tone, sample_rate=16_000, caption=f"tone {step}")})
    return base


def test_arrow_keys_on_a_focused_player_are_the_players(tones_base: Path, tab: Page) -> None:
    """←/→ on a focused audio player seek it; they once moved the card to another step
    (swapping the sound being listened to) and kept the player from seeking."""
    with ViewerThread(tones_base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=media")
        tones = ready(tab, "av/tone")
        assert step_of(tones) == 2
        audio = tones.locator("audio")
        tab.page.wait_for_function("a => a.readyState >= 1", arg=audio.element_handle())
        audio.focus()
        tab.page.keyboard.press("ArrowLeft")
        tab.page.keyboard.press("ArrowLeft")
        tab.shot("player-keys")
        assert step_of(tones) == 2
        assert "ms" not in tab.query()
        # the card itself still moves with them
        tones.focus()
        tab.page.keyboard.press("ArrowLeft")
        wait_until(lambda: step_of(tones) == 1, what="the previous step")
        tab.page.goto("about:blank")  # leave before the server stops


def test_back_at_the_newest_step_the_card_follows_new_steps(tmp_path: Path, tab: Page) -> None:
    """Stepping back and then forward to the newest step follows a live run again (like the
    histograms' slider); it once stayed pinned to that step."""
    base = tmp_path / "boards"
    pixel = np.zeros((8, 8, 3), dtype=np.uint8)
    with Board(name="live-media", base_dir=base) as board:
        for step in range(2):
            board.log(**{"live/img": Media(pixel + 60 * step, caption=f"frame {step}")})
        with ViewerThread(base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
            tab.page.goto(f"{viewer.url}?p=media")
            card = ready(tab, "live/img")
            wait_until(lambda: step_of(card) == 1, what="the newest step")
            card.focus()
            tab.page.keyboard.press("ArrowLeft")
            wait_until(lambda: url_steps(tab) == {"live/img": 0}, what="ms pinned to step 0")
            tab.page.keyboard.press("ArrowRight")
            wait_until(lambda: step_of(card) == 1, what="back at the newest step")
            wait_until(lambda: "live/img" not in url_steps(tab), what="ms no longer pinned")
            board.log(**{"live/img": Media(pixel + 120, caption="frame 2")})
            wait_until(lambda: step_of(card) == 2, what="the card follows the new step")
            assert card.locator("figcaption").inner_text() == "frame 2"
            tab.page.goto("about:blank")  # leave before the server stops
