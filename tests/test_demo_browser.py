"""The demo app in a real headless Chromium (Debian's /usr/bin/chromium with its chromedriver, via Selenium).

Loads the page, sets composer and instruments, clicks Generate, waits for the piano rolls and audio
players, switches to advanced mode, uploads a primer, draws the composer map; saves a screenshot of
each and asserts on what the page shows. No browser is downloaded: without Chromium the tests skip.

The README's screenshots are these: ``MUSENET_DOCS_SCREENSHOTS=1 MUSENET_DEMO_MODEL=checkpoints/musenet-small-music21
MUSENET_DEMO_SECONDS=12 python -m pytest -q tests/test_demo_browser.py`` writes small copies to ``docs/`` (with the
bundled model).
"""

import io
import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

import demo_app  # noqa: E402  (tests/demo_app.py)

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).is_file()), None)
DRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).is_file()), None)
REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no Chromium with chromedriver installed "
                                 "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for (or download) a browser
    model = os.environ.get("MUSENET_DEMO_MODEL")
    if not model:
        tiny, tok = demo_app.tiny_extended()  # the bundled model's vocabulary: a small, fast map
        model = demo_app.save_model(tiny, tok, tmp_path_factory.mktemp("browser-model"))
    demo, url = demo_app.launch(Path(model), tmp_path_factory.mktemp("browser-files"))
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400",
                "--no-first-run", "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        driver.get(url)
        yield driver, url, tmp_path_factory.mktemp("screenshots")
    finally:
        driver.quit()
        demo.close()


def wait_for(driver, find, timeout=90.0, what="the page"):
    """Poll ``find(driver)`` until it returns something truthy."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = find(driver)
        except Exception:  # noqa: BLE001 - the element may be re-rendered while we look
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def click_label(driver, container, text):
    label = wait_for(driver, lambda d: [e for e in css(d, f"{container} label") if e.text.strip() == text],
                     what=f"the {text!r} choice")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", label)
    label.click()


def not_blank(element) -> float:
    """The spread of the element's pixel values (0 for a blank box)."""
    from PIL import Image, ImageStat

    return max(ImageStat.Stat(Image.open(io.BytesIO(element.screenshot_as_png)).convert("L")).stddev)


def shoot(driver, folder: Path, name: str) -> Path:
    """Save a full-window screenshot, and a small copy to docs/ when MUSENET_DOCS_SCREENSHOTS is set."""
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("MUSENET_DOCS_SCREENSHOTS"):
        from PIL import Image

        img = Image.open(path).convert("RGB")
        img.thumbnail((900, 1200))
        img = img.quantize(colors=128)  # a screenshot of a page needs few colours: a small PNG
        (REPO / "docs").mkdir(exist_ok=True)
        img.save(REPO / "docs" / f"demo-{name}.png", optimize=True)
    return path


def test_simple_mode_generates_four_candidates(page):
    from selenium.webdriver.common.keys import Keys

    driver, url, shots = page
    wait_for(driver, lambda d: css(d, "#generate"), what="the Generate button")
    box = css(driver, "#composer input")[0]
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("mozart", Keys.ENTER)
    click_label(driver, "#instruments", "piano")
    click_label(driver, "#instruments", "violin")
    length = css(driver, "#seconds input")[0]
    length.send_keys(Keys.CONTROL, "a")
    length.send_keys(os.environ.get("MUSENET_DEMO_SECONDS", "2"))  # longer for the README's screenshots
    css(driver, "#generate")[0].click()
    wait_for(driver, lambda d: "4 candidates" in css(d, "#status")[0].text, what="the 4 candidates")
    rolls = wait_for(driver, lambda d: [img for k in range(1, 5) for img in css(d, f"#roll-{k} img")
                                        if d.execute_script("return arguments[0].naturalWidth", img) > 0]
                     if len(css(d, "#roll-4 img")) else None, what="4 piano rolls")
    assert len(rolls) == 4
    players = wait_for(driver, lambda d: [a for k in range(1, 5) for a in css(d, f"#audio-{k} audio, #audio-{k} "
                                                                                 "button[aria-label*='lay']")],
                       what="the audio players")
    assert players
    assert all("critic score" in css(driver, f"#info-{k}")[0].text for k in range(1, 5))
    assert all(len(css(driver, f"#midi-{k} a")) for k in range(1, 5))  # the MIDI downloads
    driver.execute_script("window.scrollTo(0, 0)")
    shoot(driver, shots, "simple")
    for img in rolls:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
        assert not_blank(img) > 5
    assert "mozart" in css(driver, "#history")[0].text


def test_advanced_mode_takes_a_primer(page, tmp_path):
    driver, url, shots = page
    assert not [e for e in css(driver, "#advanced") if e.is_displayed()]
    click_label(driver, "#mode", "Advanced")
    wait_for(driver, lambda d: [e for e in css(d, "#advanced") if e.is_displayed()], what="the advanced settings")
    primer = demo_app.write_primer(tmp_path / "my-primer.mid", program=40, seconds=4)
    css(driver, "#primer input[type=file]")[0].send_keys(str(primer))
    wait_for(driver, lambda d: css(d, "#primer td.filename[aria-label='my-primer.mid']"), what="the uploaded primer")
    click_label(driver, "#steering", "hard")
    assert css(driver, "#model textarea, #model input")[0].get_attribute("value")
    driver.execute_script("window.scrollTo(0, 0)")
    shoot(driver, shots, "advanced")


def test_composer_map_tab_and_no_request_leaves_the_machine(page):
    import json

    driver, url, shots = page
    tab = wait_for(driver, lambda d: [b for b in css(d, "button[role=tab]") if "Composer map" in b.text],
                   what="the map tab")[0]
    tab.click()
    wait_for(driver, lambda d: css(d, "#map-button"), what="the map button")[0].click()
    img = wait_for(driver, lambda d: [i for i in css(d, "#map img")
                                      if d.execute_script("return arguments[0].naturalWidth", i) > 0],
                   what="the map")[0]
    assert "t-SNE" in css(driver, "#map-caption")[0].text
    assert not_blank(img) > 5
    driver.execute_script("window.scrollTo(0, 0)")
    shoot(driver, shots, "map")
    # every request the page made went to the app itself (no fonts, scripts or analytics from elsewhere)
    urls = {json.loads(e["message"])["message"].get("params", {}).get("request", {}).get("url", "")
            for e in driver.get_log("performance")}
    outside = sorted(u for u in urls if u and not u.startswith((url.rstrip("/"), "data:", "blob:")))
    assert not outside, outside
