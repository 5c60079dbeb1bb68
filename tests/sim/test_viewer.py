"""The viewer page: its frames, menus and hover data are the recording's; big runs stay under 50 MB (thinned with a
note); and in a real browser (headless chromium) the slider, hover, colours and the linked metrics plot work."""
from __future__ import annotations

import base64
import copy
import io
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from fieldlearn.calculus.network import radius_graph
from fieldlearn.sim import load_scenario, resolve_scenario, run_scenario
from fieldlearn.sim.colouring import PALETTE
from fieldlearn.sim.frames import Frame, Recording
from fieldlearn.sim.viewer import MAX_BYTES, MetricSeries, Viewer, plan, viewer_figure, viewer_html

from .test_frames import FAULTY, devices_csv

REPO = Path(__file__).resolve().parents[2]


def decode(spec: dict) -> np.ndarray:
    kinds = {"f4": np.float32, "f8": np.float64, "u1": np.uint8, "i4": np.int32}
    a = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=kinds[spec["dtype"]])
    return a.reshape([int(s) for s in spec["shape"].split(",")]) if "shape" in spec else a


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    out = tmp_path_factory.mktemp("faulty")
    return run_scenario(resolve_scenario(copy.deepcopy(FAULTY)), out), out


def trace_of(fig: dict, name: str) -> tuple[int, dict]:
    return next((i, t) for i, t in enumerate(fig["data"]) if t.get("name") == name)


def test_frames_slider_menus_and_hover_data_are_the_recordings(faulty):
    rec = faulty[0].frames
    fig = viewer_figure(rec)
    assert [f["name"] for f in fig["frames"]] == [f"{t:g}" for t in rec.times]
    steps = fig["layout"]["sliders"][0]["steps"]
    assert [s["args"][0] for s in steps] == [[f"{t:g}"] for t in rec.times]
    colour_menu = next(m for m in fig["layout"]["updatemenus"] if m.get("name") == "colour")
    assert [b["label"] for b in colour_menu["buttons"]] == rec.names == ["gradient", "source", "region"]
    labels = [b["label"] for m in fig["layout"]["updatemenus"] for b in m["buttons"]]
    assert {"play", "pause", "links", "regions"} <= set(labels)
    hover_i, hover = trace_of(fig, "devices")
    assert hover["hovertemplate"].startswith("device %{text}<br>gradient: %{customdata[0]")
    colour_i, _ = trace_of(fig, "gradient")
    c = rec.colouring("gradient")
    for frame, f in zip(fig["frames"], rec.frames):
        data = dict(zip(frame["traces"], frame["data"]))
        values = decode(data[hover_i]["customdata"])
        assert np.array_equal(values[:, 0], f.values["gradient"].astype(np.float32), equal_nan=True)
        assert np.array_equal(decode(data[colour_i]["marker"]["color"]), c.codes(f.values["gradient"]))
        x = decode(data[hover_i]["x"])
        assert np.array_equal(np.isnan(x), ~f.alive)


def test_a_learning_run_has_the_accuracy_plot_with_a_cursor_and_a_device_menu():
    columns = ["time", "cacc", "accuracy.d8.area0", "accuracy.d8.area1", "accuracy.d9.area0", "memory"]
    rows = [[0.0, None, None, None, None, 1.0], [1.0, 0.5, 0.4, 0.1, 0.3, 2.0]]
    m = MetricSeries.from_rows(columns, rows)
    assert list(m.overall) == ["cacc"] and sorted(m.per_device) == [8, 9]
    assert list(m.per_device[8]) == ["area0", "area1"]
    assert np.isnan(m.overall["cacc"][0]) and m.per_device[9]["area0"][1] == 0.3
    assert MetricSeries.from_rows(["time", "devices"], [[0.0, 3]]) is None
    one = np.ones(1, bool)
    frames = [Frame(float(t), np.zeros((1, 2), np.float32), one, one, np.zeros((0, 2), np.int32), {"v": np.ones(1)}, 0)
              for t in (0, 1)]
    rec = Recording("r", 1, frames, categorical={"v": False})
    fig = viewer_figure(rec, m)
    cursor_i, cursor = trace_of(fig, "now")
    assert [dict(zip(f["traces"], f["data"]))[cursor_i]["x"] for f in fig["frames"]] == [[0.0, 0.0], [1.0, 1.0]]
    menu = next(mm for mm in fig["layout"]["updatemenus"] if mm.get("name") == "mover")
    assert [b["label"] for b in menu["buttons"]] == ["device 8", "device 9"]
    assert menu["buttons"][1]["args"][0]["visible"] == [False, False, True]
    assert "plotly_hover" in viewer_html(rec, m)


def synthetic(n: int, frames: int, moving: bool) -> Recording:
    rng = np.random.default_rng(0)
    pos = (rng.random((n, 2)) * np.sqrt(n)).astype(np.float32)
    g = radius_graph(pos.astype(np.float64), 1.8)
    rows = g.rows()
    half = rows < g.neighbours
    links = np.column_stack([rows[half], g.neighbours[half]]).astype(np.int32)
    alive = np.ones(n, dtype=bool)
    out = []
    for k in range(frames):
        p = pos + np.float32(0.01 * k) if moving else pos
        out.append(Frame(float(k), p, alive, alive, links.copy() if moving else links,
                         {"g": rng.random(n) * k, "leader": rng.integers(0, 50, n).astype(float)}, 0))
    return Recording("big", n, out, categorical={"g": False, "leader": True})


@pytest.mark.parametrize("moving", [False, True], ids=["static", "all-moving"])
def test_ten_thousand_devices_times_a_hundred_frames_stay_under_50_mb(moving):
    rec = synthetic(10_000, 100, moving)
    page = viewer_html(rec)
    assert len(page) <= MAX_BYTES
    p = plan(rec)
    if moving:  # positions and links change every frame: thinned, and the page says so
        assert p.note and "recorded frame is shown" in p.note and p.note in page
    else:
        assert p.note == "" and len(p.frames) == 100 and p.devices is None


def test_a_run_too_big_even_for_twenty_frames_shows_every_kth_device():
    p = plan(synthetic(3_000, 30, True), max_bytes=6_000_000)
    assert p.devices is not None and "device is shown" in p.note and len(p.frames) >= 20


def test_without_any_value_the_devices_are_still_drawn():
    one = np.ones(3, bool)
    rec = Recording("bare", 3, [Frame(0.0, np.zeros((3, 2), np.float32), one, one, np.zeros((0, 2), np.int32), {}, 0)])
    fig = viewer_figure(rec)
    _, hover = trace_of(fig, "devices")
    assert hover["marker"]["color"] == "#1f77b4" and hover["hovertemplate"] == "device %{text}<extra></extra>"
    assert not any(m.get("name") == "colour" for m in fig["layout"]["updatemenus"])


def test_the_notebook_viewer_is_an_iframe_of_the_page(faulty):
    v = Viewer(faulty[0].frames)
    html = v._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "plotly" in html and "Viewer(faulty: 11 frames" in repr(v)


# ------------------------------------------------------------------------------------------ in a real browser
def _browser_binaries() -> tuple[str, str] | None:
    names = ("chromium", "chromium-browser", "google-chrome")
    browser = next((shutil.which(b) for b in names if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    found = _browser_binaries()
    if found is None:
        pytest.skip("no chromium and chromedriver here (Debian: apt install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1000"):
        options.add_argument(arg)
    options.binary_location = found[0]
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    yield driver
    driver.quit()


def _open(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".slider-container .slider-tick-rect"))


def _slide_to(driver, k: int) -> str:
    """Click the slider's rail at tick k (as a user does); returns the slider's current-value label."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ticks = driver.find_elements(By.CSS_SELECTOR, ".slider-container .slider-tick-rect")
    rail = driver.find_element(By.CSS_SELECTOR, ".slider-container .slider-rail-touch-rect")
    t, r = ticks[k].rect, rail.rect
    ActionChains(driver).move_to_element_with_offset(rail, round(t["x"] + t["width"] / 2 - (r["x"] + r["width"] / 2)),
                                                      0).click().perform()
    time.sleep(0.6)
    return driver.find_elements(By.CSS_SELECTOR, ".slider-container text.slider-label")[0].text


def _hover(driver, uid: str, k: int) -> str:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    points = driver.find_elements(By.CSS_SELECTOR, f".trace{uid} path.point")
    ActionChains(driver).move_to_element(points[k]).perform()
    time.sleep(0.4)
    return driver.find_element(By.CSS_SELECTOR, ".hoverlayer").text


def _click_menu(driver, label: str) -> None:
    """Click the menu button (or dropdown header) showing `label`."""
    from selenium.webdriver.common.action_chains import ActionChains

    for css in (".updatemenu-button", ".updatemenu-dropdown-button", ".updatemenu-header"):
        for e in driver.find_elements("css selector", css):
            if e.text.replace("\u25bc", "").strip() == label:
                ActionChains(driver).move_to_element(e.find_element("css selector", "rect")).click().perform()
                time.sleep(0.5)
                return
    raise AssertionError(f"no menu button {label!r}")


def _fill(driver, uid: str, k: int) -> tuple[float, float, float]:
    from selenium.webdriver.common.by import By

    fill = driver.find_elements(By.CSS_SELECTOR, f".trace{uid} path.point")[k].value_of_css_property("fill")
    return tuple(int(v) / 255 for v in re.findall(r"\d+", fill)[:3])


def _not_blank(png: bytes) -> None:
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    inked = (im < 235).any(axis=2).mean()
    colours = len(np.unique(im.reshape(-1, 3)[::7], axis=0))
    assert inked > 0.03 and colours > 30, (inked, colours)


def test_in_a_browser_the_slider_hover_and_colours_show_the_runs_export(browser, faulty):
    result, out = faulty
    rec = result.frames
    fig = viewer_figure(rec)
    uid = {name: trace_of(fig, name)[1]["uid"] for name in ("devices", "gradient", "source", "crashed")}
    page = out / "viewer.html"
    assert page.is_file()
    _open(browser, page)
    # links off and on again
    link_uids = [t["uid"] for t in fig["data"] if t.get("name") == "links"]
    shown = [u for u in link_uids if browser.find_elements("css selector", f".trace{u} path.js-line")]
    assert len(shown) == 1

    def width() -> str:
        return browser.find_element("css selector", f".trace{shown[0]} path.js-line").value_of_css_property(
            "stroke-width")

    assert width() == "0.7px"
    _click_menu(browser, "links")
    assert width() == "0px"
    _click_menu(browser, "links")
    assert width() == "0.7px"
    # colour by the source sensor (device 0 is the source), then by the gradient again
    _click_menu(browser, "gradient")  # opens the colour menu
    _click_menu(browser, "source")
    assert not browser.find_elements("css selector", f".trace{uid['gradient']} path.point")
    assert np.allclose(_fill(browser, uid["source"], 0), to_rgb(PALETTE[1]), atol=2 / 255)
    assert np.allclose(_fill(browser, uid["source"], 1), to_rgb(PALETTE[0]), atol=2 / 255)
    _click_menu(browser, "source")
    _click_menu(browser, "gradient")
    assert not browser.find_elements("css selector", f".trace{uid['source']} path.point")
    # the slider to t = 9 (devices 3 and 4 are down), then hover devices: their values and colours are the export's
    k = rec.times.tolist().index(9.0)
    assert _slide_to(browser, k) == "t = 9"
    export = devices_csv(out / "devices.csv")
    c = rec.colouring("gradient")
    table = c.colours()
    for point in (0, 7, 15):
        text = _hover(browser, uid["devices"], point)
        device = int(re.search(r"device (\d+)", text).group(1))
        shown_value = float(re.search(r"gradient: ([-\d.e+]+)", text).group(1))
        want = export[(9.0, device)]["gradient"]
        assert shown_value == float(f"{want:.4g}"), (text, want)
        colour = to_rgb(table[c.codes(np.array([want]))[0]])
        assert np.allclose(_fill(browser, uid["gradient"], point), colour, atol=2 / 255)
    # the points are the alive devices in id order, without the two crashed ones: the 15th is device 17
    assert device == 17 and len(browser.find_elements("css selector", f".trace{uid['crashed']} path.point")) == 2
    _not_blank(browser.get_screenshot_as_png())


def test_in_a_browser_hovering_a_mover_shows_its_accuracy_and_the_cursor_follows_the_slider(browser, tmp_path):
    s = load_scenario(REPO / "scenarios" / "c2fl.yaml",
                      ["duration.rounds=6", "exports.viewer.every=2", "exports.figures.timeseries=false"])
    result = run_scenario(s, tmp_path / "c2fl")
    fig = viewer_figure(result.frames, result.metric_series())
    hover_uid = trace_of(fig, "devices")[1]["uid"]
    _open(browser, tmp_path / "c2fl" / "viewer.html")
    assert _slide_to(browser, 2) == "t = 4"
    cursor = browser.execute_script(
        "var gd = document.getElementById('fieldlearn-viewer');"
        "return gd.data.filter(function (t) { return t.name === 'now'; })[0].x;")
    assert cursor == [4, 4]
    assert "device 21" in _hover(browser, hover_uid, 21)  # a mover of area 1 (all 48 devices are up)
    time.sleep(0.4)
    legend = " ".join(e.text for e in browser.find_elements("css selector", ".legend .legendtext"))
    assert "device 21 on area1" in legend and "device 8 on" not in legend
    menus = " ".join(e.text for e in browser.find_elements("css selector", ".updatemenu-header-group"))
    assert "device 21" in menus
    _not_blank(browser.get_screenshot_as_png())


def test_the_street_network_is_one_trace_beneath_the_devices_when_the_scenario_names_one():
    from .sim_helpers import city

    rec = run_scenario(city(exports={"viewer": {"every": 10}})).recording()
    assert len(rec.streets) == 168
    fig = viewer_figure(rec)
    assert fig["data"][0]["name"] == "streets"
    x = decode(fig["data"][0]["x"])
    assert len(x) == sum(len(p) + 1 for p in rec.streets) and np.isnan(x).sum() == 168
    rec.streets = []
    assert "streets" not in [t.get("name") for t in viewer_figure(rec)["data"]]
