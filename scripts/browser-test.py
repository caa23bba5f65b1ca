#!/usr/bin/env python3
"""The live page in a real browser: headless Chromium (Debian's chromium + chromium-driver,
driven by selenium) opens `/` on a live `stockdrop serve`, a purchase is made through the API,
and the page must show it in the feed and move the drop's stock bar. A screenshot is kept in
reports/browser-test/. Exit 0 on success, 1 on a failed check.

    STOCKDROP_BIN=.build/debug/stockdrop python3 scripts/browser-test.py
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import headless

BIN = os.environ.get("STOCKDROP_BIN", ".build/debug/stockdrop")
OUT = os.path.join("reports", "browser-test")


def request(base, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status, json.loads(response.read())


def token(env, user, name, role="user"):
    return subprocess.check_output([BIN, "token", "--user", str(user), "--name", name, "--role", role], env=env, text=True).strip()


def main():
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ, STOCKDROP_JWT_SECRET=secrets.token_hex(32))
    server = subprocess.Popen([BIN, "serve", "--port", "0", "--no-rate-limit", "--log-level", "warning"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        base = headless.address(server, r"serving \w+ on (http://[0-9.]+:\d+)", seconds=60)
        if base is None:
            print("browser-test: the server did not start", file=sys.stderr)
            return 1
        admin, viewer, buyer = token(env, 1, "Admin", "admin"), token(env, 7, "Viewer"), token(env, 42, "Ada Lovelace")
        _, drop = request(base, "POST", "/v1/drops", admin, {"name": "Browser Sneaker", "priceCents": 12000, "totalStock": 3})

        driver = headless.chromium(1200, 800)
        driver.get(base + "/#token=" + viewer)
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "live")
        card = wait.until(lambda d: d.find_element(By.ID, "drop-%d" % drop["id"]))
        wait.until(lambda d: card.get_attribute("data-available") == "3")
        bar_before = card.find_element(By.CSS_SELECTOR, ".bar > div").value_of_css_property("width")

        request(base, "POST", "/v1/drops/%d/reserve" % drop["id"], buyer)
        request(base, "POST", "/v1/drops/%d/purchase" % drop["id"], buyer)

        wait.until(lambda d: "Ada Lovelace bought Browser Sneaker" in d.find_element(By.ID, "feed").text)
        wait.until(lambda d: card.get_attribute("data-available") == "2")
        # The bar's width animates over 250 ms: wait for it to settle below where it started.
        wait.until(lambda d: card.find_element(By.CSS_SELECTOR, ".bar > div").value_of_css_property("width") != bar_before)
        time.sleep(0.4)
        shot = os.path.join(OUT, "live-page.png")
        driver.save_screenshot(shot)
        print("browser-test: the feed showed the purchase and the stock bar moved (%s -> %s); screenshot %s" % (
            bar_before, card.find_element(By.CSS_SELECTOR, ".bar > div").value_of_css_property("width"), shot))
        return 0
    except Exception as error:  # noqa: BLE001 - any failure is the test failing, with the page kept
        if driver is not None:
            driver.save_screenshot(os.path.join(OUT, "failure.png"))
        print("browser-test: FAILED: %r" % (error,), file=sys.stderr)
        return 1
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
