"""What the browser tests share: headless Chromium driven by selenium (Debian's chromium and
chromium-driver), and reading a child's output until a line names where it listens."""
import re
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(width, height):
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=%d,%d" % (width, height)):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def address(process, pattern, seconds=120):
    """The first group of `pattern` in the first line of `process`'s output that matches it,
    or None when the output ends or `seconds` pass first."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            return None
        match = re.search(pattern, line)
        if match:
            return match.group(1)
    return None
