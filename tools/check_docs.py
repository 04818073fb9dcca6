"""Load the built documentation site in headless Chromium, take a screenshot and check what a reader would use.

Needs Debian's chromium and chromium-driver (``apt-get install chromium chromium-driver``) and selenium
(``pip install selenium``); neither is part of the project's environment, so this is a check you run, not a
test (as ``tools/check_report.py`` is for a run's report). Build the site first with ``make docs``.

    .venv/bin/python tools/check_docs.py [site] [--screenshot docs-home.png]

Checks: the home page renders from disk (file://, no server, no network) with its title, navigation and
figure; search finds ``profile_scores`` (the site served on 127.0.0.1, as ``make docs-serve`` would: browsers
run the search worker only from a server); a notebook page shows its figures (every image decoded, natural
width > 0); the API page lists every parameter of ``profile_scores``, read from the library's own signature.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import inspect
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PAGE = "notebooks/01_noise_injection.html"


def profile_parameters() -> list[str]:
    sys.path.insert(0, str(ROOT / "lib"))
    from lossprofile.analysis.profile import profile_scores

    return list(inspect.signature(profile_scores).parameters)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def wait_for(condition, seconds: float = 15.0, step: float = 0.25):
    end = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


def check(site: Path, screenshot: Path) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    server, base = serve(site)
    result: dict = {}
    try:
        # 1. home page, from disk
        driver.get((site / "index.html").resolve().as_uri())
        wait_for(lambda: driver.execute_script("return document.readyState") == "complete")
        result["home_title"] = driver.title
        result["home_h1"] = driver.find_element(By.CSS_SELECTOR, "article h1").text
        result["home_nav_links"] = len(driver.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link"))
        result["home_images"] = wait_for(lambda: [w for w in driver.execute_script(
            "return Array.from(document.querySelectorAll('article img')).map(i => i.complete ? i.naturalWidth : 0)")
            if w] and driver.execute_script(
            "return Array.from(document.querySelectorAll('article img')).map(i => i.naturalWidth)"))
        driver.save_screenshot(str(screenshot))

        # 2. search, on the served site
        driver.get(f"{base}/index.html")
        wait_for(lambda: driver.execute_script("return document.readyState") == "complete")
        driver.execute_script("document.querySelector('label.md-search__icon, label[for=__search]').click()")
        box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
        box.send_keys("profile_scores")
        hits = wait_for(lambda: [(a.text.split("\n")[0], a.get_attribute("href")) for a in
                                 driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item a")], seconds=20)
        result["search_hits"] = len(hits or [])
        result["search_first"] = [h[0] for h in (hits or [])[:5]]
        result["search_pages"] = sorted({h[1].split("/")[-1].split("#")[0].split("?")[0] for h in (hits or [])})

        # 3. a notebook page's figures
        driver.get(f"{base}/{NOTEBOOK_PAGE}")
        wait_for(lambda: driver.execute_script("return document.readyState") == "complete")
        widths = wait_for(lambda: (lambda ws: ws if ws and all(ws) else None)(driver.execute_script(
            "return Array.from(document.querySelectorAll('article img')).map(i => i.complete ? i.naturalWidth : 0)")))
        result["notebook_page"] = NOTEBOOK_PAGE
        result["notebook_images"] = widths or driver.execute_script(
            "return Array.from(document.querySelectorAll('article img')).map(i => i.naturalWidth)")
        result["notebook_source_note"] = driver.find_element(By.CSS_SELECTOR, "article").text.split("\n")[0:3]

        # 4. the API page lists profile_scores' parameters
        driver.get(f"{base}/api.html")
        wait_for(lambda: driver.execute_script("return document.readyState") == "complete")
        text = driver.execute_script(
            "const h = document.getElementById('lossprofile.analysis.profile.profile_scores');"
            "return h ? h.parentElement.innerText : ''")
        params = profile_parameters()
        result["api_parameters"] = len(params)
        result["api_parameters_missing"] = [p for p in params if p not in text]
    finally:
        driver.quit()
        server.shutdown()

    assert "lossprofile" in result["home_title"] and result["home_h1"] == "lossprofile", result
    assert result["home_nav_links"] > 10 and result["home_images"] and all(result["home_images"]), result
    assert result["search_hits"] > 0 and "api.html" in result["search_pages"], result
    assert result["notebook_images"] and all(w > 0 for w in result["notebook_images"]), result
    assert result["api_parameters"] > 0 and not result["api_parameters_missing"], result
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("site", nargs="?", default=str(ROOT / "site"), help="the built site (default: site/)")
    p.add_argument("--screenshot", default="docs-home.png")
    args = p.parse_args()
    site = Path(args.site)
    if not (site / "index.html").is_file():
        sys.exit(f"{site}/index.html not found: build the site first with `make docs`")
    result = check(site, Path(args.screenshot))
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"screenshot -> {args.screenshot}")


if __name__ == "__main__":
    sys.exit(main())
