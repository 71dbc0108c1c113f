"""``report.html``: the Markdown-to-HTML converter on a sample, and the page of a network report rendered by headless
Chromium (skipped where none is installed; ``.ci/run`` installs it)."""

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from test_report import network_cube

from qkdjax.report import POLICY, markdown_to_html, write_report

SAMPLE = r"""# Title with <tags> & "quotes"

Some *emphasis*, **strong with `code <b>`**, 5 * 3 = 15 and a \*literal\*.
A second line of the paragraph.

- item `a|b`
- second
  continued

| name | value |
|---|---:|
| <script>alert(1)</script> | a \| b |
| x&y |

```yaml
key: <b>not bold</b> & more

  indented **not strong**
```

![A "figure"](fig.png)

*The caption*

![inline](x.png) within text.
"""

EXPECTED = """<h1>Title with &lt;tags&gt; &amp; &quot;quotes&quot;</h1>
<p>Some <em>emphasis</em>, <strong>strong with <code>code &lt;b&gt;</code></strong>, 5 * 3 = 15 and a *literal*. A second line of the paragraph.</p>
<ul>
<li>item <code>a|b</code></li>
<li>second continued</li>
</ul>
<table>
<thead>
<tr><th>name</th><th style="text-align:right">value</th></tr>
</thead>
<tbody>
<tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td style="text-align:right">a | b</td></tr>
<tr><td>x&amp;y</td><td style="text-align:right"></td></tr>
</tbody>
</table>
<pre><code class="language-yaml">key: &lt;b&gt;not bold&lt;/b&gt; &amp; more

  indented **not strong**</code></pre>
<figure>
<img src="data:image/png;base64,AAAA" alt="A &quot;figure&quot;">
<figcaption>The caption</figcaption>
</figure>
<p><img src="x.png" alt="inline"> within text.</p>
"""

VOID = {"img", "meta", "br", "hr", "link", "input"}


class Elements(HTMLParser):
    """The elements of a page: (tag, attrs, text inside), checking that every element is closed in order."""

    def __init__(self, page: str):
        super().__init__()
        self.open: list[list] = []
        self.elements: list[tuple[str, dict, str]] = []
        self.feed(page)
        self.close()
        assert not self.open, f"unclosed: {[e[0] for e in self.open]}"

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            self.elements.append((tag, dict(attrs), ""))
        else:
            self.open.append([tag, dict(attrs), ""])

    def handle_endtag(self, tag):
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes <{self.open[-1][0] if self.open else None}>"
        name, attrs, text = self.open.pop()
        self.elements.append((name, attrs, text))

    def handle_data(self, data):
        for element in self.open:
            element[2] += data

    def texts(self, tag: str) -> list[str]:
        return [" ".join(text.split()) for name, _, text in self.elements if name == tag]


def test_markdown_to_html_escapes_text_and_converts_our_subset():
    html = markdown_to_html(SAMPLE, lambda src: "data:image/png;base64,AAAA" if src == "fig.png" else src)
    assert html == EXPECTED
    elements = Elements(html)  # well formed: every element closed in order
    assert elements.texts("script") == [] and elements.texts("b") == []  # tags in the text stay text
    assert elements.texts("td")[0] == "<script>alert(1)</script>"


def test_markdown_to_html_edge_cases():
    assert markdown_to_html("") == "\n"
    assert markdown_to_html("```\nunclosed <x>") == "<pre><code>unclosed &lt;x&gt;</code></pre>\n"  # runs to the end
    assert markdown_to_html("| not | a table |\nno rule") == "<p>| not | a table | no rule</p>\n"
    assert markdown_to_html("![a](b.png)\n\nplain") == '<figure>\n<img src="b.png" alt="a">\n</figure>\n<p>plain</p>\n'
    assert markdown_to_html("**a*b**") == "<p><strong>a*b</strong></p>\n"
    assert markdown_to_html("### x ###") == "<h3>x</h3>\n"


# --- The page in a browser ----------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip
# Added to a copy of the page (the page itself has no script): after the load event, what the browser made of each
# image, written into the DOM that --dump-dom prints.
PROBE = """<script>
addEventListener("load", () => {
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]));
  document.body.append(probe);
});
</script>"""


def chromium(tmp_path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.skip("no Chromium to render report.html (apt-get install chromium; .ci/run installs it)")
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report(network_cube(), out)
    return out


def decoded_size(src: str) -> tuple[int, int]:
    assert src.startswith("data:image/png;base64,")
    with Image.open(BytesIO(base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True))) as image:
        image.load()
        return image.size


def test_chromium_renders_the_report_with_every_figure_decoded(report, tmp_path):
    page = (report / "report.html").read_text()
    assert "<script" not in page and re.search(r"""(src|href)=["'](?!data:)""", page) is None  # nothing loaded from outside
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace(POLICY, POLICY + "; script-src 'unsafe-inline'").replace("</body>", PROBE + "\n</body>"))
    dom = Elements(chromium(tmp_path, "--dump-dom", probe.as_uri()))

    assert dom.texts("h1") == ["qkdjax report: network <test> & co"] and dom.texts("title") == dom.texts("h1")
    assert dom.texts("h2") == ["Grid", "Headline answers", "Figures", "Config"]
    assert {"Cheapest design", "Sites, links and demands", "Key performance per demand", "Links"} <= set(dom.texts("h3"))
    headers = [text for name, _, text in dom.elements if name == "thead"]
    assert len(headers) == page.count("<table>") >= 5 and any("uptime" in h and "MTTR [h]" in h for h in headers)
    cells = dom.texts("td")
    start = cells.index("cheapest")
    assert cells[start : start + 5] == ["cheapest", "1,200,000", "Alice-T1:fibre, T1-Bob:fibre", "T1, T2", "0.97 [0.955, 0.98]"]
    assert dom.texts("pre")[0] == "link: type: network # <b>not bold</b>"  # the config, its tags as text
    assert dom.texts("b") == [] and dom.texts("figcaption")[0].startswith("Sites and links at the first grid point (design = fibre)")

    images = [attrs for name, attrs, _ in dom.elements if name == "img"]
    assert len(images) == len(list(report.glob("*.png"))) == 1
    rendered = json.loads(next(text for _, attrs, text in dom.elements if attrs.get("id") == "probe"))  # [complete, width, height]
    assert rendered == [[True, *decoded_size(image["src"])] for image in images]  # every image decoded, at its PNG size


def coloured_pixels(image: Image.Image) -> int:
    """Pixels with a clear colour (max - min channel > 60): the figures' colour bars, links and sites; the page's
    own style is grey."""
    pixels = np.asarray(image.convert("RGB"), dtype=int)
    return int((pixels.max(axis=-1) - pixels.min(axis=-1) > 60).sum())


def test_chromium_screenshot_shows_every_figure_on_the_page(report, tmp_path):
    shot = tmp_path / "shot.png"
    height = 8000  # the whole page (about 3000 px), so every figure is on the screenshot
    chromium(tmp_path, f"--window-size=1000,{height}", f"--screenshot={shot}", (report / "report.html").as_uri())
    with Image.open(shot) as image:
        assert image.size == (1000, height) and np.asarray(image.convert("L")).std() > 10  # not a blank page
        shown = coloured_pixels(image)
    expected = 0
    for png in report.glob("*.png"):
        with Image.open(png) as figure:
            assert figure.width <= 1000 - 50  # shown at its own size: the page is wider
            expected += coloured_pixels(figure)
    assert expected > 5000 and shown == pytest.approx(expected, rel=0.1)  # the figures' pixels, drawn on the page
