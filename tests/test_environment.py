"""environment.yml and requirements.txt must name the same versions."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if line.strip().startswith("#"):
            continue
        m = PIN.match(line)
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


def test_conda_environment_matches_pip_pins():
    pip_pins, conda_pins = pins(ROOT / "requirements.txt"), pins(ROOT / "environment.yml")
    assert pip_pins, "requirements.txt has no pins"
    assert pip_pins == conda_pins


def test_torch_is_pinned_to_the_local_cpu_build():
    assert pins(ROOT / "requirements.txt")["torch"] == "2.13.0"


def test_makefile_installs_tinysoundfont_at_the_documented_version():
    text = (ROOT / "Makefile").read_text()
    assert "tinysoundfont==0.3.7" in text and "tinysoundfont==0.3.7" in (ROOT / "environment.yml").read_text()


def test_makefile_installs_audiocraft_without_its_torch_pin():
    text = (ROOT / "Makefile").read_text()
    assert "--no-deps audiocraft==1.3.0 xformers==0.0.35" in text
