#!/usr/bin/env python3
"""The run's live dashboard in a real browser: headless Chromium (Debian's chromium +
chromium-driver, driven by selenium) opens `stockdrop run --dashboard` while a sale runs in
process, must show live numbers, and must turn the no-oversell invariant red when units nobody
sold are planted in the run's database, before the run ends; the run then ends with exit 1 (the
checker agrees) and the page turns into the report. Screenshots are kept in
reports/dashboard-browser-test/. Exit 0 on success, 1 on a failed check.

    STOCKDROP_BIN=.build/debug/stockdrop python3 scripts/dashboard-browser-test.py
"""
import os
import subprocess
import sys
import time
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import headless

BIN = os.environ.get("STOCKDROP_BIN", ".build/debug/stockdrop")
OUT = os.path.join("reports", "dashboard-browser-test")
SCENARIO = """name: dashboard-browser
description: a slow sale that lasts long enough to be watched
seed: 11
drops:
  - {name: Watched Sneaker, priceCents: 9900, stock: 40, reserveTTL: 500ms}
users:
  - count: 1500
    drop: Watched Sneaker
    arrival: {rate: {perSecond: 125, for: 12s}}
    thinkTime: {uniform: [5ms, 40ms]}
    afterReserve: {purchase: 0.5, cancel: 0.2, abandon: 0.3}
    onRejected: {retries: 1, backoff: 100ms}
limits: {maxDuration: 30s}
"""


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def run_database_url():
    """The embedded cluster's URL with the in-process actor run's own database."""
    url = subprocess.check_output([BIN, "db", "url"], text=True).strip().splitlines()[-1]
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/stockdrop_run_actor"))


def main():
    os.makedirs(OUT, exist_ok=True)
    scenario = os.path.join(OUT, "scenario.yaml")
    with open(scenario, "w") as handle:
        handle.write(SCENARIO)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    run = subprocess.Popen([BIN, "run", scenario, "--strategy", "actor", "--report-dir", OUT,
                            "--dashboard", "127.0.0.1:0", "--dashboard-linger", "20"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        url = headless.address(run, r"^dashboard: (http://127\.0\.0\.1:\d+/)")
        if url is None:
            print("dashboard-browser-test: the run never said where its dashboard is", file=sys.stderr)
            return 1
        driver = headless.chromium(1400, 1600)
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        # Live numbers: the sale is under way and the page follows it.
        wait.until(lambda d: text(d, "status") == "running" and int(text(d, "arrived")) > 100
                   and float(text(d, "elapsed")) >= 2)
        oversell = driver.find_element(By.CSS_SELECTOR, 'tr[data-invariant="no-oversell"]')
        assert oversell.get_attribute("data-status") == "holds", oversell.get_attribute("data-status")
        drop = driver.find_element(By.CSS_SELECTOR, '#drops tr[id^="drop-"]').get_attribute("id")[len("drop-"):]
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-answers polyline"), "no live chart"
        driver.save_screenshot(os.path.join(OUT, "live.png"))
        live = "%s s, %s users arrived, %s answers in the last second" % (
            text(driver, "elapsed"), text(driver, "arrived"), text(driver, "rps"))

        # Forty-one held units that nobody sold, planted in the run's own database.
        subprocess.check_call(["psql", "-q", "-v", "ON_ERROR_STOP=1", run_database_url(), "-c",
                               "INSERT INTO reservations (drop_id, user_id, status, expires_at) "
                               "SELECT %d, 9000000 + n, 'ACTIVE', now() + interval '1 hour' "
                               "FROM generate_series(1, 41) AS n" % int(drop)])
        planted = time.time()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-invariant="no-oversell"]')
                   .get_attribute("data-status") == "broken")
        turned = time.time() - planted
        status = text(driver, "status")
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-invariant="no-oversell"]')
        colour = row.find_element(By.CSS_SELECTOR, "td").value_of_css_property("color")
        driver.save_screenshot(os.path.join(OUT, "oversell.png"))
        assert status == "running", "the invariant turned red only after the run ended (%s)" % status
        assert colour in ("rgba(207, 34, 46, 1)", "rgb(207, 34, 46)"), colour

        # The end: exit 1 (the checker finds the same rows) and the page becomes the report.
        code = run.wait(timeout=120)
        assert code == 1, "the run exited %d, not 1" % code
        WebDriverWait(driver, 30).until(lambda d: d.title.startswith("stockdrop: ") and "FAIL" in d.page_source)
        driver.save_screenshot(os.path.join(OUT, "report.png"))
        print("dashboard-browser-test: live at %s; no-oversell turned red %.1f s after the plant, while the run "
              "was %s; the run exited %d and the page became the report; screenshots in %s" % (
                  live, turned, status, code, OUT))
        return 0
    except Exception as error:  # noqa: BLE001 - any failure is the test failing, with the page kept
        if driver is not None:
            driver.save_screenshot(os.path.join(OUT, "failure.png"))
        print("dashboard-browser-test: FAILED: %r" % (error,), file=sys.stderr)
        return 1
    finally:
        if driver is not None:
            driver.quit()
        if run.poll() is None:
            run.terminate()
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()


if __name__ == "__main__":
    sys.exit(main())
