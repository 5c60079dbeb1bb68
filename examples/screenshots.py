"""Make the README's pictures: the viewer (in headless chromium) and one animation frame for grid, faults and c2fl.

    python examples/screenshots.py [--out examples/images]

Each scenario runs from `scenarios/` (c2fl shortened to 40 rounds, so that the movers have moved once) with frames
recorded for the viewer; the PNGs are reduced to a 192-colour palette to stay small. Needs chromium, chromedriver
and selenium (`pip install -e '.[test]'`; Debian: `apt install chromium chromium-driver`).
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# scenario, overrides, colouring value, viewer: (time to show, device to hover or None), animation frame time
SHOTS = [
    ("grid", [], "gradient", (12.0, 210), 12.0),
    ("faults", [], "gradient", (72.0, 120), 150.0),
    ("c2fl", ["duration.rounds=40"], "leader", (32.0, 21), 32.0),
]


def small_png(png: bytes, colours: int = 192) -> bytes:
    """The picture with a reduced palette (a fraction of the size, no visible loss for these plots)."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True)
    return out.getvalue()


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    found = [shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")]
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900", "--hide-scrollbars"):
        options.add_argument(arg)
    options.binary_location = next(b for b in found if b)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def show_time(driver, times: list[float], t: float, hover_uid: str | None, point: int | None) -> None:
    """Move the slider to time t (a click on its rail, as a user would) and hover a device."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    k = times.index(t)
    ticks = driver.find_elements(By.CSS_SELECTOR, ".slider-container .slider-tick-rect")
    rail = driver.find_element(By.CSS_SELECTOR, ".slider-container .slider-rail-touch-rect")
    a, r = ticks[k].rect, rail.rect
    ActionChains(driver).move_to_element_with_offset(rail, round(a["x"] + a["width"] / 2 - (r["x"] + r["width"] / 2)),
                                                      0).click().perform()
    time.sleep(0.8)
    if hover_uid is not None and point is not None:
        points = driver.find_elements(By.CSS_SELECTOR, f".trace{hover_uid} path.point")
        ActionChains(driver).move_to_element(points[point]).perform()
        time.sleep(0.6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "examples" / "images"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from fieldlearn.sim import load_scenario, run_scenario
    from fieldlearn.sim.animation import Animation
    from fieldlearn.sim.viewer import viewer_figure
    from fieldlearn.sim.watch import metrics_of

    driver = browser()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, sets, colour, (t_view, point), t_frame in SHOTS:
                sets = sets + [f"exports.viewer={{color: {colour}}}", "exports.figures.timeseries=false"]
                result = run_scenario(load_scenario(REPO / "scenarios" / f"{name}.yaml", sets), Path(tmp) / name)
                rec = result.frames
                times = rec.times.tolist()
                anim = Animation(rec, color=colour)
                (out / f"{name}-frame.png").write_bytes(small_png(anim.frame_png(times.index(t_frame), dpi=90)))
                fig = viewer_figure(rec, metrics_of(result), color=colour)
                hover_uid = next(t["uid"] for t in fig["data"] if t.get("name") == "devices")
                driver.get((Path(tmp) / name / "viewer.html").resolve().as_uri())
                chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
                driver.set_window_size(1100, fig["layout"]["height"] + chrome + 16)
                WebDriverWait(driver, 30).until(
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".slider-container .slider-tick-rect"))
                show_time(driver, times, t_view, hover_uid, point)
                (out / f"{name}-viewer.png").write_bytes(small_png(driver.get_screenshot_as_png()))
                print(f"{name}: {out / (name + '-viewer.png')}, {out / (name + '-frame.png')}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
