"""Writes docs/explorer.png: the explorer page with a latent walk and an arithmetic shown.

    python serving/explorer_screenshot.py --model_dir=runs/demo --output=docs/explorer.png

Exports the run's generator to a temporary folder, serves it with the local server (the page
at its REST root) and drives headless Chromium (Debian's chromium and chromium-driver, selenium
from PyPI): the first page of samples, a walk through --walk, and mean(A) - mean(B) + mean(C).
"""

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _driver(width, height):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _wait(driver, section):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 300).until(
        lambda d: d.find_element("id", section).get_attribute("data-state") in ("ready", "error")
    )
    if driver.find_element("id", section).get_attribute("data-state") == "error":
        raise SystemExit(f"{section}: {driver.find_element('id', 'message').text}")


def _click(driver, seeds):
    for s in seeds:
        driver.find_element("css selector", f'#grid figure[data-seed="{s}"] img').click()


def _drive(driver, url, args):
    from selenium.webdriver.support.ui import Select

    driver.get(url)
    _wait(driver, "samples")
    for group, seeds in zip("abc", (args.a, args.b, args.c), strict=True):
        _click(driver, seeds)
        driver.find_element("css selector", f'.to-group[data-group="{group}"]').click()
    driver.find_element("id", "arith-run").click()
    _wait(driver, "arithmetic")
    _click(driver, args.walk)
    Select(driver.find_element("id", "walk-method")).select_by_value(args.method)
    steps = driver.find_element("id", "walk-steps")
    steps.clear()
    steps.send_keys(str(args.steps))
    driver.find_element("id", "walk-run").click()
    _wait(driver, "walk")
    driver.execute_script(
        "const s = document.getElementById('walk-slider'); s.value = Math.floor(s.max / 2);"
        "s.dispatchEvent(new Event('input'));"
    )
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(args.width, int(height) + 140)
    time.sleep(1)
    return driver.get_screenshot_as_png()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="runs/demo")
    parser.add_argument("--output", default="docs/explorer.png")
    ints = lambda v: [int(s) for s in v.split(",")]  # noqa: E731
    parser.add_argument("--walk", type=ints, default=[3, 17, 42])
    parser.add_argument("--method", default="linear", choices=["linear", "spherical"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--a", type=ints, default=[1, 2, 5])
    parser.add_argument("--b", type=ints, default=[8, 13])
    parser.add_argument("--c", type=ints, default=[21, 34, 55])
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()

    from PIL import Image

    from keras_dcgan.serving import LocalModelServer
    from keras_dcgan.serving.export import export_generator
    from keras_dcgan.training import load_trained

    _, gan = load_trained(args.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "dcgan")
        export_generator(gan, base, warmup=False)
        with LocalModelServer(base, grpc_port=0, rest_port=0) as server:
            driver = _driver(args.width, 900)
            try:
                png = _drive(driver, f"http://127.0.0.1:{server.rest_port}/", args)
            finally:
                driver.quit()
    picture = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    picture.save(args.output, optimize=True)
    print(f"Wrote {args.output} ({picture.size[0]}x{picture.size[1]}, "
          f"{os.path.getsize(args.output)} bytes)")  # fmt: skip


if __name__ == "__main__":
    main()
