"""`factory report` on a store made by a real demo run, rendered in headless Chromium with every plot present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import rows, run_cli

from factory.report import PLOTS

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
# run in the page after layout: for each plot, its drawn size and how many bars and labels it has
CHECK = """<script>
document.body.dataset.check = JSON.stringify([...document.querySelectorAll('figure')].map(f => {
  const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.id, width: box.width, height: box.height, rects: f.querySelectorAll('svg rect').length,
          texts: f.querySelectorAll('svg text').length};
}));
</script></body>"""


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_report_page_is_self_contained_with_every_plot(demo_store, tmp_path):
    out = tmp_path / "report.html"
    res = run_cli("report", "--db", str(demo_store), "--out", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    page = out.read_text()
    assert not re.search(r"<script|<link|<img|src=|@import|url\(", page)  # nothing to fetch, nothing to run
    for pid, title, _ in PLOTS:
        assert f'<figure id="{pid}">' in page and title in page
    [(n, passed)] = rows(demo_store, "SELECT count(*), count(*) FILTER (WHERE accepted) FROM candidates")
    assert f"{passed / n:.1%} of {n}" in page  # the acceptance bar's label
    assert "wrong_answer" in page and "near_duplicate" in page
    assert "<b>Decontamination</b>, checked against: MATH-500 (none)" in page and "HumanEval (none)" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/setup installs it: apt-get install chromium)")
def test_report_renders_in_headless_chromium(demo_store, tmp_path):
    out = tmp_path / "report.html"
    assert run_cli("report", "--db", str(demo_store), "--out", str(out), timeout=120).returncode == 0
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", CHECK))
    res = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    found = json.loads(re.search(r'data-check="([^"]*)"', res.stdout)[1].replace("&quot;", '"'))
    assert [f["id"] for f in found] == [pid for pid, _, _ in PLOTS]
    for f in found:
        assert f["width"] > 600 and f["height"] > 40, f  # laid out and visible
        assert f["rects"] > 0 and f["texts"] > 0, f  # every plot drew bars and labels: the demo store has data for all

    shot = tmp_path / "report.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2400)
    colors = img.getcolors(1 << 20)
    assert len(colors) > 20  # not a blank page: text and coloured bars
    assert any(c == (0x2F, 0x6F, 0xB0) for _, c in colors)  # the bars' blue is on screen
