"""Load a run's report.html in headless Chromium, take a screenshot and check what a person would use.

Needs Debian's chromium and chromium-driver (``apt-get install chromium chromium-driver``) and selenium
(``pip install selenium``); neither is part of the project's environment, so this is a check you run, not a
test. With no report given it makes one: ``lossprofile score`` on two rendered ASAP excerpts and a broken file.

    .venv/bin/python tools/check_report.py [results/mine/report.html] [--screenshot report.png]

Checks: the page loads from disk with no network; the pieces table has rows and sorts when its header is
clicked; every curve image has decoded (natural width > 0); every audio player has loaded its file's metadata
(a duration of the excerpt's length) and plays; the skipped files are listed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_run(folder: Path) -> Path:
    data = folder / "music"
    data.mkdir(parents=True)
    asap = sorted((ROOT / "data" / "asap").rglob("*.mid"))[:2]
    for midi in asap:
        (data / midi.name).write_bytes(midi.read_bytes())
    (data / "broken.wav").write_bytes(b"RIFF not really")
    out = folder / "out"
    subprocess.run([str(ROOT / ".venv" / "bin" / "lossprofile"), "score", "--model", "tiny", "--device", "cpu",
                    "--data", str(data), "--out", str(out), "--lengths", "50", "150"], check=True)
    return out / "report.html"


def check(report: Path, screenshot: Path) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(report.resolve().as_uri())
        time.sleep(1.0)
        rows = driver.find_elements(By.CSS_SELECTOR, "#pieces tbody tr")
        first_before = rows[0].find_elements(By.TAG_NAME, "td")[0].text
        header = driver.find_elements(By.CSS_SELECTOR, "#pieces th")
        delta_col = [h.text.split("\n")[0] for h in header].index("mean_delta")
        header[delta_col].click()
        values = [float(r.find_elements(By.TAG_NAME, "td")[delta_col].get_attribute("data-value"))
                  for r in driver.find_elements(By.CSS_SELECTOR, "#pieces tbody tr")]
        images = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
        durations = driver.execute_script("""
            const players = Array.from(document.querySelectorAll('audio'));
            players.forEach(a => a.load());
            return players.map(a => a.src);""")
        time.sleep(2.0)
        durations = driver.execute_script("return Array.from(document.querySelectorAll('audio')).map(a => a.duration)")
        played = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const a = document.querySelector('audio');
            a.muted = true;
            a.play().then(() => setTimeout(() => { done(a.currentTime); a.pause(); }, 700)).catch(e => done(String(e)));""")
        skipped = driver.find_elements(By.CSS_SELECTOR, "#errors tbody tr")
        driver.save_screenshot(str(screenshot))
        result = dict(rows=len(rows), first_row=first_before, sorted_by_mean_delta=values == sorted(values),
                      images=images, audio_durations=durations, played_seconds=played, skipped=len(skipped))
    finally:
        driver.quit()
    assert result["rows"] > 0 and result["sorted_by_mean_delta"], result
    assert result["images"] and all(w > 0 for w in result["images"]), result
    assert result["audio_durations"] and all(d and d > 1 for d in result["audio_durations"]), result
    assert isinstance(played, float) and played > 0.2, result
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", nargs="?", help="a report.html (default: make one from two ASAP excerpts)")
    p.add_argument("--screenshot", default="report-screenshot.png")
    args = p.parse_args()
    report = Path(args.report) if args.report else make_run(Path(tempfile.mkdtemp(prefix="lossprofile-report-")))
    result = check(report, Path(args.screenshot))
    print(f"{report}: {result}\nscreenshot -> {args.screenshot}")


if __name__ == "__main__":
    sys.exit(main())
