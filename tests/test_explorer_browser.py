"""`vaekit explore`'s page in a real browser: Chromium (Debian's chromium-headless-shell, no Playwright browser
download) driven by Playwright on a uvicorn server started here on a free loopback port: the map renders, hovering
decodes, moving a slider changes the decoded image, two clicked examples interpolate, a bad request is refused
with a 4xx and a message and the page keeps working. The screenshot goes to a temporary path, and to
docs/explorer.png when VAEKIT_UPDATE_SCREENSHOTS=1 (from the run VAEKIT_SCREENSHOT_RUN names, else the tiny run
trained here). Skipped, saying why, without playwright or Chromium (VAEKIT_CHROMIUM names another binary)."""

import os
import shutil
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import vaekit

from test_explorer import pixels

pytestmark = pytest.mark.skipif(find_spec("fastapi") is None or find_spec("uvicorn") is None,
                                reason="the explorer needs fastapi and uvicorn (pip install 'vaekit[explore]')")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The explorer of a tiny digits run (latent 3: a PCA map; 1 epoch)."""
    from vaekit.explorer.session import open_explorer

    out = tmp_path_factory.mktemp("explore-browser") / "run"
    vaekit.train("digits", out=out, latent_dim=3, hidden=[32], epochs=1, batch_size=128, report=False, seed=0)
    return open_explorer(out)


CHROMIUM = [os.environ.get("VAEKIT_CHROMIUM", ""), "/usr/lib/chromium/chromium-headless-shell",
            shutil.which("chromium-headless-shell") or "", shutil.which("chromium") or ""]


def chromium() -> str | None:
    return next((p for p in CHROMIUM if p and os.access(p, os.X_OK)), None)


@pytest.fixture
def browser_page():
    if find_spec("playwright") is None:
        pytest.skip("the browser test needs playwright (pip install playwright; no browser download is needed)")
    exe = chromium()
    if exe is None:
        pytest.skip("the browser test needs Chromium: apt-get install chromium-headless-shell "
                    "(or set VAEKIT_CHROMIUM to a Chromium binary)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1420, "height": 680})
        finally:
            browser.close()


@pytest.fixture
def served(image):
    """The explorer of the screenshot run (VAEKIT_SCREENSHOT_RUN) or the tiny image run, served by uvicorn in a
    thread on a free loopback port."""
    from vaekit.explorer.app import bind, create_app, server, url
    from vaekit.explorer.session import open_explorer

    other = os.environ.get("VAEKIT_SCREENSHOT_RUN")
    ex = open_explorer(other) if other else image
    sock = bind("127.0.0.1", 0)
    srv = server(create_app(ex))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield ex, url(sock)
    srv.should_exit = True
    thread.join(10)
    sock.close()


def map_box(page) -> dict:
    """The map's box in the viewport, scrolled to the top first (focusing a slider may scroll the page)."""
    page.evaluate("window.scrollTo(0, 0)")
    return page.locator("#map").bounding_box()


def slider_image(page) -> str:
    return page.get_attribute("#slider-out img", "src")


def test_browser_map_slider_interpolation_and_a_bad_request(browser_page, served, tmp_path):
    page = browser_page
    ex, url = served
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    # the map: every point drawn, in more than one label colour
    assert page.get_attribute("#map", "data-points") == str(ex.n)
    colours = page.evaluate("""() => { const c = document.getElementById('map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set(); let ink = 0;
        for (let i = 0; i < d.length; i += 4) { if (d[i] + d[i+1] + d[i+2] < 600) { ink++; seen.add(d[i] >> 4 << 8 | d[i+1] >> 4 << 4 | d[i+2] >> 4); } }
        return [ink, seen.size]; }""")
    assert colours[0] > 200 and colours[1] >= 5, colours
    # hovering decodes the point under the pointer
    box = map_box(page)
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.45)
    page.wait_for_selector("#hover-out img")
    # moving the slider of the dimension with the largest KL changes the decoded image
    before = slider_image(page)
    first = page.locator("#sliders input[type=range]").first
    assert first.get_attribute("data-dim") == str(ex.kl_order[0])
    first.focus()
    page.keyboard.press("End")  # to z + 3
    page.wait_for_function("(b) => document.querySelector('#slider-out img').src !== b", arg=before)
    after = slider_image(page)
    a, b = (pixels(s.split(",", 1)[1]) for s in (before, after))
    assert a.shape == b.shape and np.abs(a - b).mean() > 1.0, np.abs(a - b).mean()
    # two picked examples: the interpolation strip
    box = map_box(page)
    for i in (int(np.argmax(ex.data.xy[:, 0])), int(np.argmin(ex.data.xy[:, 0]))):
        x, y = ex.data.xy[i]
        px = page.evaluate("([x, y]) => toPixel([x, y])", [float(x), float(y)])
        page.mouse.click(box["x"] + px[0], box["y"] + px[1])
        page.wait_for_function("(i) => document.getElementById('example-cap').textContent.startsWith('#' + i)", arg=i)
    page.click("#interp-go")
    page.wait_for_function("() => document.querySelectorAll('#interp img').length === 8")
    # the screenshot: always to tmp_path, to the README's docs/explorer.png when asked
    shot = tmp_path / "explorer.png"
    hovered, box = page.text_content("#hover-z"), map_box(page)
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5)
    page.wait_for_function("(t) => document.getElementById('hover-z').textContent !== t", arg=hovered)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("VAEKIT_UPDATE_SCREENSHOTS") == "1":
        from PIL import Image

        img = Image.open(shot).convert("RGB")
        if shot.stat().st_size > 140_000:  # keep the README's picture small (palette PNG)
            img = img.quantize(colors=256)
        img.save(ROOT / "docs" / "explorer.png", optimize=True)
    # a bad request: refused with a 4xx and a message on the page; the server and the page keep working
    status = page.evaluate("""async () => (await fetch('/api/decode', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: '{"z": [NaN]}'})).status""")
    assert status == 422
    page.evaluate("api('/api/decode', {z: [1, 2, 3, 4, 5, 6, 7, 8, 9]}).catch(() => null)")
    page.wait_for_selector("#refused:not([hidden])")
    assert page.text_content("#refused") == \
        f"request refused (400): z must hold {ex.latent_dim} values (the latent size), got 9"
    moved = slider_image(page)
    page.locator("#sliders input[type=range]").first.focus()
    page.keyboard.press("Home")  # to z − 3
    page.wait_for_function("(b) => document.querySelector('#slider-out img').src !== b", arg=moved)
