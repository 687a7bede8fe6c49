"""The explorer page (`keras_dcgan.serving.explorer`): served at `dcgan serve`'s REST root and by
`dcgan explore` (`keras_dcgan.serving.proxy`), and driven in headless Chromium.

The browser test needs Debian's `chromium` and `chromium-driver` and `selenium` from PyPI
(`.ci/run` installs them); without them it is skipped, saying why. With
DCGAN_EXPLORER_SCREENSHOT=<path> it also writes a screenshot of the page (docs/explorer.png).
"""

import base64
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from keras_dcgan import images as image_utils
from keras_dcgan.analysis import ablation, arithmetic, latent_walks
from keras_dcgan.errors import UserError
from keras_dcgan.serving import LocalModelServer, explorer
from keras_dcgan.serving.export import export_generator
from keras_dcgan.serving.proxy import ExplorerProxy, check_rest_url
from tests.helpers import dcgan, dcgan_env, tiny_gan


@pytest.fixture(scope="module")
def gan():
    return tiny_gan(seed=3)


@pytest.fixture(scope="module")
def export_base(gan, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("exports") / "dcgan")
    export_generator(gan, base, warmup=False)
    return base


@pytest.fixture(scope="module")
def server(export_base):
    with LocalModelServer(export_base, grpc_port=0, rest_port=0, max_batch=64) as s:
        yield s


def _expected(gan, seeds):
    return image_utils.to_uint8(gan.sample(seeds=seeds).numpy())


def _raw(port, method, path, body=None, headers=None):
    """(status, headers, body) of one request, the path sent as is (no normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _post(port, path, body):
    data = json.dumps(body).encode()
    return _raw(port, "POST", path, data, {"Content-Type": "application/json"})


# ------------------------------------------------------------------- the page, without a browser
def test_the_page_is_served_at_the_rest_root(server):
    status, headers, body = _raw(server.rest_port, "GET", "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<title>DCGAN explorer</title>" in body
    assert b'<meta name="dcgan-model" content="dcgan">' in body
    assert int(headers["Content-Length"]) == len(body)
    status, head_headers, head_body = _raw(server.rest_port, "HEAD", "/")
    assert status == 200 and head_body == b"" and head_headers["Content-Length"] == str(len(body))
    for name, kind in (("explorer.js", "text/javascript"), ("explorer.css", "text/css")):
        status, headers, data = _raw(server.rest_port, "GET", f"/explorer/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert data == explorer.asset(name)
    assert _raw(server.rest_port, "GET", "/?model=dcgan&seed=5")[0] == 200


@pytest.mark.parametrize("path", [
    "/explorer/../server.py", "/explorer/%2e%2e/server.py", "/explorer/__init__.py",
    "/../../etc/passwd", "/explorer//explorer.js", "/explorer/explorer.js/", "/explorer.js",
    "/explorer/EXPLORER.JS", "/nope",
])  # fmt: skip
def test_only_the_pages_own_files_are_served(server, path):
    status, headers, body = _raw(server.rest_port, "GET", path)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert "Unknown path" in json.loads(body)["error"]


def test_the_rest_api_is_unchanged_beside_the_page(server, gan):
    status, _, body = _raw(server.rest_port, "GET", "/v1/models/dcgan")
    assert status == 200 and json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    status, _, body = _post(server.rest_port, "/v1/models/dcgan:predict",
                            {"signature_name": "from_seeds", "inputs": {"seeds": [2]}})  # fmt: skip
    assert status == 200
    images = np.array(json.loads(body)["outputs"]["images"], np.uint8)
    np.testing.assert_array_equal(images, _expected(gan, [2]))
    status, _, body = _raw(server.rest_port, "POST", "/", b"{}", {"Content-Length": "2"})
    assert status == 404 and "Unknown path" in json.loads(body)["error"]


def test_the_model_name_is_injected_escaped():
    page = explorer.page('a"<b>').decode()
    assert '<meta name="dcgan-model" content="a&quot;&lt;b&gt;">' in page
    assert explorer.static_file("/explorer/explorer.js?v=1", "m")[1].startswith("text/javascript")
    assert explorer.static_file("/explorer/missing.js", "m") is None
    with pytest.raises(KeyError):
        explorer.asset("__init__.py")


# --------------------------------------------------------------------------- dcgan explore
def test_the_explore_proxy_forwards_predict_and_errors_as_they_are(server, gan):
    with ExplorerProxy(f"http://127.0.0.1:{server.rest_port}/", "dcgan", port=0) as proxy:
        status, headers, body = _raw(proxy.port, "GET", "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"DCGAN explorer" in body
        assert _raw(proxy.port, "HEAD", "/")[2] == b""
        request = {"signature_name": "from_seeds", "inputs": {"seeds": [4, 8]}}
        status, _, body = _post(proxy.port, "/v1/models/dcgan:predict", request)
        assert status == 200
        outputs = json.loads(body)["outputs"]
        np.testing.assert_array_equal(np.array(outputs["images"], np.uint8), _expected(gan, [4, 8]))
        status, _, body = _raw(proxy.port, "GET", "/v1/models/dcgan/metadata")
        assert status == 200 and "interpolate" in json.loads(body)["metadata"]["signature_def"][
            "signature_def"]  # fmt: skip
        bad = {"signature_name": "from_seeds", "inputs": {"seeds": [[1, 2]]}}
        direct = _post(server.rest_port, "/v1/models/dcgan:predict", bad)
        forwarded = _post(proxy.port, "/v1/models/dcgan:predict", bad)
        assert forwarded[0] == direct[0] == 400 and forwarded[2] == direct[2]
        assert "must have shape [N]" in json.loads(forwarded[2])["error"]
        assert _raw(proxy.port, "GET", "/explorer/../proxy.py")[0] == 404
        status, _, body = _raw(proxy.port, "POST", "/v1/models/dcgan:predict", b"")
        assert status == 400 and "error" in json.loads(body)  # the remote's answer


def test_a_model_server_that_is_down_gives_502():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with ExplorerProxy(f"http://127.0.0.1:{port}", port=0, timeout=5) as proxy:
        status, headers, body = _raw(proxy.port, "GET", "/v1/models/dcgan/metadata")
        assert status == 502 and headers["Content-Type"] == "application/json"
        assert f"Cannot reach the model server at http://127.0.0.1:{port}" in json.loads(body)[
            "error"]  # fmt: skip


@pytest.mark.parametrize("url", ["ftp://host:8501", "127.0.0.1:8501", "http://", "http://h:x"])
def test_a_bad_rest_address_is_refused(url):
    with pytest.raises(UserError, match="--rest"):
        check_rest_url(url)


def test_explore_command_errors_are_one_line():
    out = dcgan("explore", "--rest=localhost:8501")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("dcgan explore: error: --rest must be the model server")
    out = dcgan("explore", "--help")
    assert out.returncode == 0 and "  --rest:" in out.stdout


# --------------------------------------------------------------------------- in a browser
def _browser():
    """A headless Chromium driven by selenium, or a skip saying what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium, in the dev extras)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--disable-gpu"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture(scope="module")
def served_run(tiny_run_dir, tmp_path_factory):
    """`dcgan serve` (a subprocess) over the export of a run folder, and the CLI's renderings
    of that run (`dcgan sample`, `dcgan interpolate`), made while the server starts."""
    from keras_dcgan.training import load_trained

    tmp = tmp_path_factory.mktemp("served")
    _, gan = load_trained(tiny_run_dir)
    base = str(tmp / "exports")
    export_generator(gan, base, warmup=False)
    cli = {
        "sample": ["sample", "--seeds=3,17,42"],
        "linear": ["interpolate", "--seeds=3,17,42", "--steps=5", "--method=linear"],
        "spherical": ["interpolate", "--seeds=3,17,42", "--steps=5", "--method=spherical"],
    }
    env = dcgan_env()
    processes = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keras_dcgan.cli.main",
                *args,
                f"--model_dir={tiny_run_dir}",
                f"--output={tmp / name}.png",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        # (one process per command, run at once)
        for name, args in cli.items()
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", "serve", f"--model_base_path={base}",
         "--port=0", "--rest_api_port=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        line = serve.stdout.readline()
        match = re.search(r"REST http://127\.0\.0\.1:(\d+)", line)
        assert match, f"dcgan serve printed {line!r}"
        renders = {}
        for name, process in processes.items():
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-2000:]
            renders[name] = np.asarray(Image.open(f"{tmp / name}.png"))
        yield gan, int(match.group(1)), renders
    finally:
        serve.terminate()
        serve.wait(10)


def _cells(grid, n, size, columns):
    """The n images of a `save_grid` PNG (2-pixel padding)."""
    out = []
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = 2 + r * (size + 2), 2 + c * (size + 2)
        out.append(grid[y : y + size, x : x + size])
    return np.stack(out)


def _pixels(elements):
    """The PNGs shown by <img> elements (their data: URLs), decoded."""
    out = []
    for element in elements:
        src = element.get_attribute("src")
        assert src.startswith("data:image/png;base64,")
        out.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))))
    return np.stack(out)


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module's browser tests (each loads the page afresh)."""
    browser = _browser()
    try:
        yield browser
    finally:
        browser.quit()


def test_the_page_in_headless_chromium(served_run, driver):  # noqa: PLR0915 (one scenario)
    gan, port, renders = served_run
    _scenario(driver, gan, port, renders)


def _wait_state(driver, section, states=("ready", "error"), timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element("id", section).get_attribute("data-state") in states
    )
    return driver.find_element("id", section).get_attribute("data-state")


def _message(driver):
    box = driver.find_element("id", "message")
    return box.text if box.is_displayed() else ""


def _click_seeds(driver, seeds):
    for s in seeds:
        driver.find_element("css selector", f'#grid figure[data-seed="{s}"] img').click()


def _scenario(driver, gan, port, renders):
    driver.get(f"http://127.0.0.1:{port}/")
    assert _wait_state(driver, "samples") == "ready", _message(driver)
    assert "z_dim 16, images 32x32x3" in driver.find_element("id", "model-info").text
    shown = _pixels(driver.find_elements("css selector", "#grid img"))
    np.testing.assert_array_equal(shown, _expected(gan, range(64)))  # one page, one request

    # a selection, against `dcgan sample --seeds=3,17,42`
    _click_seeds(driver, [3, 17, 42])
    assert driver.find_element("id", "selection").get_attribute("value") == "3,17,42"
    selected = driver.find_elements("css selector", "#grid figure.selected img")
    np.testing.assert_array_equal(_pixels(selected), _cells(renders["sample"], 3, 32, 2))
    assert "--seeds=3,17,42" in driver.find_element("id", "selection-cli").get_attribute("value")

    for method in ("linear", "spherical"):  # against `dcgan interpolate --seeds=3,17,42 --steps=5`
        _walk(driver, method, "5")
        assert _wait_state(driver, "walk") == "ready", _message(driver)
        strip = _pixels(driver.find_elements("css selector", "#walk-strip img"))
        np.testing.assert_array_equal(strip, _cells(renders[method], 9, 32, 9))
        view = json.loads(driver.find_element("id", "walk-json").get_attribute("value"))
        expected = latent_walks.walk_grid(gan, [[3, 17, 42]], steps=5, method=method).latents
        np.testing.assert_array_equal(np.array(view["z"], np.float32), expected)
        assert f"--method={method}" in driver.find_element("id", "walk-cli").get_attribute("value")
    _arithmetic(driver, gan)
    _screenshot(driver)
    _bad_input(driver, port)


def _walk(driver, method, steps):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "walk-method")).select_by_value(method)
    field = driver.find_element("id", "walk-steps")
    field.clear()
    field.send_keys(steps)
    driver.find_element("id", "walk-run").click()


def _arithmetic(driver, gan):
    driver.find_element("id", "clear-selection").click()
    for group, seeds in (("a", [1, 2, 5]), ("b", [8, 13]), ("c", [21, 34, 55])):
        _click_seeds(driver, seeds)
        driver.find_element("css selector", f'.to-group[data-group="{group}"]').click()
    assert driver.find_element("id", "arith-a").get_attribute("value") == "1,2,5"
    driver.find_element("id", "arith-run").click()
    assert _wait_state(driver, "arithmetic") == "ready", _message(driver)
    view = json.loads(driver.find_element("id", "arith-json").get_attribute("value"))
    z = {g: latent_walks.seeds_to_latents(s, 16) for g, s in (("a", [1, 2, 5]), ("b", [8, 13]),
                                                             ("c", [21, 34, 55]))}  # fmt: skip
    means = np.stack([arithmetic.concept_vector(z[g]) for g in "abc"])
    result = arithmetic.combine(*means)
    np.testing.assert_array_equal(np.array(view["means"], np.float32), means)
    np.testing.assert_array_equal(np.array(view["result"], np.float32), result)
    near = np.array(view["neighbours"], np.float32)
    assert near.shape == (8, 16) and np.abs(near - result).max() <= 0.25 + 1e-6
    render = lambda v: image_utils.to_uint8(latent_walks.render(gan, v))  # noqa: E731
    find = lambda css: _pixels(driver.find_elements("css selector", css))  # noqa: E731
    np.testing.assert_array_equal(find('img[data-role="exemplar-a"]'), _expected(gan, [1, 2, 5]))
    for g in "abc":
        np.testing.assert_array_equal(find(f'img[data-role="mean-{g}"]'),
                                      render(means["abc".index(g)][None]))  # fmt: skip
    np.testing.assert_array_equal(find('img[data-role="result"]'), render(result[None]))
    np.testing.assert_array_equal(find('img[data-role="neighbour"]'), render(near))
    cli = driver.find_element("id", "arith-cli").get_attribute("value")
    assert "--a=1,2,5 --b=8,13 --c=21,34,55" in cli


def _screenshot(driver):
    path = os.environ.get("DCGAN_EXPLORER_SCREENSHOT")
    if not path:
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, min(int(height) + 140, 2000))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    png = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    png.quantize(colors=256).save(path, optimize=True)
    driver.set_window_size(1200, 900)


def _bad_input(driver, port):
    field = driver.find_element("id", "seed-start")
    field.clear()
    field.send_keys("1.5")
    driver.find_element("id", "go").click()
    assert _wait_state(driver, "samples") == "error"
    assert '"1.5" is not an integer seed' in _message(driver)
    driver.find_element("id", "clear-selection").click()
    driver.find_element("id", "walk-run").click()
    assert _wait_state(driver, "walk") == "error"
    assert "The selection is empty" in _message(driver)
    driver.find_element("id", "selection").send_keys("1,2,3,4")
    _walk(driver, "linear", "100")
    assert _wait_state(driver, "walk") == "error"
    assert "That walk has 298 images, more than 256" in _message(driver)
    driver.get(f"http://127.0.0.1:{port}/?model=nope")  # the server's 400, shown
    assert _wait_state(driver, "samples") == "error"
    assert "The server answered 400" in _message(driver)
    assert "unknown model 'nope'" in _message(driver)


# ----------------------------------------------------------------- boxes for dcgan ablate
CANVAS = 256  # the box canvas's side in CSS pixels (explorer.css)


def _edge(css, image_size):
    """The page's mapping of a canvas position (CSS px from its left or top edge) to an image
    pixel edge: round(css * image_size / CANVAS), clamped to 0..image_size."""
    return min(max(round(css * image_size / CANVAS), 0), image_size)


def _drag(driver, start, delta):
    """A mouse drag on the box canvas from `start` (x, y, CSS px from the canvas's centre:
    selenium's element offsets) by `delta`; a plain click there when `delta` is None."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "box-canvas")
    actions = ActionChains(driver).move_to_element_with_offset(canvas, *start)
    if delta is None:
        actions.click().perform()
    else:
        actions.click_and_hold().move_by_offset(*delta).release().perform()


def _expected_box(start, delta, image_size):
    """[x0, y0, x1, y1] of a drag, in image pixels (x1, y1 excluded)."""
    a = [CANVAS / 2 + start[0], CANVAS / 2 + start[1]]
    b = [a[0] + delta[0], a[1] + delta[1]]
    x = sorted(_edge(v, image_size) for v in (a[0], b[0]))
    y = sorted(_edge(v, image_size) for v in (a[1], b[1]))
    return [x[0], y[0], x[1], y[1]]


def test_boxes_for_dcgan_ablate(served_run, driver):
    """Boxes drawn with the mouse on two seeds (one without boxes) give a box file that
    `ablation.parse_boxes` accepts, with the drags' pixel coordinates. The offsets are multiples
    of 8 CSS px (one image pixel of the 32 px model on the 256 px canvas): each corner lies on a
    pixel edge, so the page's rounding gives the same box even if the pointer lands a few CSS
    px off (selenium rounds the element's centre)."""
    gan, port, _ = served_run
    size = 32
    driver.get(f"http://127.0.0.1:{port}/")
    assert _wait_state(driver, "samples") == "ready", _message(driver)
    driver.find_element("id", "box-show").click()  # no seed chosen
    assert _wait_state(driver, "boxes") == "error"
    assert "No seed chosen" in _message(driver)
    assert driver.find_element("id", "box-json").get_attribute("value") == ""

    _click_seeds(driver, [9, 7])  # the selection's last seed: 7
    driver.find_element("id", "box-from-selection").click()
    assert _wait_state(driver, "boxes") == "ready", _message(driver)
    np.testing.assert_array_equal(_pixels([driver.find_element("id", "box-image")]),
                                  _expected(gan, [7]))  # fmt: skip
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                          driver.find_element("id", "box-canvas"))  # fmt: skip
    drags = [((-96, -80), (64, 48)), ((40, 16), (-24, 72)), ((0, 0), (16, 16))]
    for start, delta in drags:
        _drag(driver, start, delta)
        assert _message(driver) == ""
    # (the second drag goes leftwards: its x0 is where it ends) the third is deleted
    items = driver.find_elements("css selector", "#box-list li")
    assert len(items) == 3
    items[2].find_element("tag name", "button").click()
    assert len(driver.find_elements("css selector", "#box-list li")) == 2

    driver.find_element("id", "box-pick").click()  # a grid click now picks the seed
    _click_seeds(driver, [12])
    assert _wait_state(driver, "boxes") == "ready", _message(driver)
    assert driver.find_element("id", "box-seed").get_attribute("value") == "12"
    assert driver.find_element("id", "selection").get_attribute("value") == "9,7"  # unchanged
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                          driver.find_element("id", "box-canvas"))  # fmt: skip
    _drag(driver, (10, 10), None)  # a click without a drag: no box
    assert "a box needs at least 1 pixel each way" in _message(driver)
    driver.find_element("id", "box-add-empty").click()
    assert _message(driver) == ""
    driver.find_element("id", "box-model").send_keys("runs/tiny")

    text = driver.find_element("id", "box-json").get_attribute("value")
    data = json.loads(text)
    parsed = ablation.parse_boxes(data, image_size=size)
    assert data["model"] == "runs/tiny" and data["image_size"] == size
    assert [s["seed"] for s in data["samples"]] == [7, 12]  # in annotation order
    expected = [_expected_box(start, delta, size) for start, delta in drags[:2]]
    assert expected == [[4, 6, 12, 12], [18, 18, 21, 27]]  # the mapping, written out
    assert data["samples"][0]["boxes"] == expected
    assert data["samples"][1]["boxes"] == []
    assert list(parsed.seeds) == [7, 12]
    link = driver.find_element("id", "box-download")
    assert link.get_attribute("download") == "boxes.json"
    href = link.get_attribute("href")
    assert json.loads(urllib.parse.unquote(href.split(",", 1)[1])) == data
    cli = driver.find_element("id", "box-cli").get_attribute("value")
    # 32 px: the second-highest hidden block is up1
    assert cli == "dcgan ablate --model_dir=RUN --boxes=boxes.json --layer=up1 --seeds=7,12"
