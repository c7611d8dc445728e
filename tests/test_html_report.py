"""report.html and summary.md from the same blocks (issue 24): the answer first, every table of
summary.md in report.html with the same cells, images inline, no external URL; results.schema.json;
and the page in a real headless Chromium (skipped when none is installed)."""
import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from overconf.report.document import TableBlock, arrange, parse, to_markdown
from overconf.report.tables import markdown_table

MD = "\n".join([
    "# overconf study: x", "", "- dataset: d", "",
    "## m / base", "", "Model: acc", "",
    markdown_table(["attack", "TPR", "FPR test", "FPR noise"], [["max_score", "0.5", "0.4 [0.3, 0.5]", ""]]), "",
    "## Comparison", "", "### Membership inference", "",
    markdown_table(["model", "setting", "TPR", "FPR test"], [["m", "base", "0.5", "0.4"], ["m", "ls", "0.4", "0.3"]]), "",
    "### Verdicts: the findings", "", "Intro.", "", "1. **Claim A: holds**", "   - m / ls: 0.1: holds",
    "2. **Claim B: not tested in this run** (needs C)", ""])


class Tables(HTMLParser):
    """Every <table> of a page as [header cells] + [row cells], images' src, every href / src."""

    def __init__(self):
        super().__init__()
        self.tables, self.urls, self.ids, self.cell, self.tags = [], [], set(), None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [a[k] for k in ("href", "src") if k in a]
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def page(text: str) -> Tables:
    p = Tables()
    p.feed(text)
    return p


def md_tables(markdown: str) -> list[list[list[str]]]:
    """summary.md's tables as cells, markup as the page shows it (no ** or backticks)."""
    strip = lambda c: re.sub(r"\*\*|`", "", c)  # noqa: E731
    return [[[strip(c) for c in b.header]] + [[strip(c) for c in row] for row in b.body]
            for b in parse(markdown) if isinstance(b, TableBlock)]


def test_markdown_round_trips_through_the_blocks():
    assert to_markdown(parse(MD)) == MD
    [t1, t2] = [b for b in parse(MD) if isinstance(b, TableBlock)]
    assert t1.body == [["max_score", "0.5", "0.4 [0.3, 0.5]", ""]] and t2.header[:2] == ["model", "setting"]


def test_the_answer_comes_first_with_verdict_headlines_and_the_comparison_table():
    text = to_markdown(arrange(parse(MD)))
    lines = text.split("\n")
    answer, contents, details = (lines.index(h) for h in ("## The answer", "## Contents", "## m / base"))
    assert answer < contents < details and answer < 10
    top = "\n".join(lines[answer:contents])
    assert "1. **Claim A: holds**" in top and "2. **Claim B: not tested in this run** (needs C)" in top
    assert "- m / ls: 0.1: holds" not in top  # the evidence stays in its section
    assert "| m | ls | 0.4 | 0.3 |" in top and "max_score" not in top  # the comparison's table is the key
    assert "(#verdicts-the-findings)" in top and "- [m / base](#m--base)" in text
    # without a comparison the first (model, setting) FPR table is the key
    alone = to_markdown(arrange(parse(MD.split("## Comparison")[0])))
    assert alone.index("| max_score | 0.5 | 0.4 [0.3, 0.5] |  |") < alone.index("## Contents")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from tests.conftest import TINY
    from overconf.runner.study import Study
    from overconf.runner.validation import config_from_dict

    tmp = tmp_path_factory.mktemp("html")
    raw = copy.deepcopy(TINY)
    raw |= {"cache_dir": str(tmp / "cache"), "report": {"figures": True, "tensorboard": False, "fp_grid": 8},
            "settings": {"baseline": {}, "ls": {"recipe": {"label_smoothing": 0.1}}}}
    raw["recipe"]["epochs"] = 2
    return Study(config_from_dict(raw), tmp / "run").run()


def test_summary_opens_with_the_answer_within_a_screen(run):
    lines = (run.run_dir / "summary.md").read_text().split("\n")
    answer = lines.index("## The answer")
    assert answer < 10 and lines.index("## Contents") < 40
    top = "\n".join(lines[answer:lines.index("## Contents")])
    assert "Verdicts" in top and "**Label smoothing lowers OOD / fake FPR and raises AUROC:" in top
    assert "| small_resnet | baseline |" in top and "| small_resnet | ls |" in top


def test_report_html_shows_every_table_of_summary_md_with_images_inline_and_no_url(run):
    d = run.run_dir
    summary, text = (d / "summary.md").read_text(), (d / "report.html").read_text()
    p = page(text)
    expected = md_tables(summary)
    assert len(expected) >= 10
    for table in expected:
        assert table in p.tables, table[0]
    # the per-source FPR tables carry their Clopper-Pearson intervals
    assert any(t[0][:3] == ["attack", "TPR", "FPR test"] and re.match(r"\d\.\d+ \[\d\.\d+, \d\.\d+\]$", t[1][2])
               for t in p.tables)
    images = [u for u in p.urls if u.startswith("data:")]
    assert images and all(u.startswith("data:image/png;base64,") for u in images)
    assert p.tags.count("img") == len(images) >= 5
    external = [u for u in p.urls if not u.startswith(("data:image/png;base64,", "#"))]
    assert external == [], external
    assert not re.search(r"https?://(?!json-schema)", text) and "<script" not in text and "<link" not in text
    assert all(u[1:] in p.ids for u in p.urls if u.startswith("#"))  # every contents link has its anchor
    assert any(a.startswith("fp_grid_") for a in re.findall(r'alt="([^"]+)"', text))
    assert any(a.startswith("roc_") for a in re.findall(r'alt="([^"]+)"', text))
    assert "configuration" in p.ids and "versions" in p.ids and "label_smoothing: 0.1" in text
    import importlib.metadata
    assert ["torch", importlib.metadata.version("torch")] in page(text).tables[-1]


def test_results_schema_is_versioned_and_every_row_conforms(run):
    jsonschema = pytest.importorskip("jsonschema")
    d = run.run_dir
    schema = json.loads((d / "results.schema.json").read_text())
    assert schema["version"] == 1 and "member = positive" in schema["description"]
    rows = json.loads((d / "results.json").read_text())
    jsonschema.validate(rows, schema)
    bad = [dict(rows[0], value="high")]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{k: v for k, v in rows[0].items() if k != "metric"}], schema)


def test_overconf_compare_writes_its_own_report_html(run, tmp_path):
    from overconf.report.comparison_report import write_comparison
    from overconf.report.runs import load_run

    write_comparison([load_run(run.run_dir)], tmp_path, figures=False)
    text = (tmp_path / "report.html").read_text()
    assert text.index("The answer") < text.index("Contents") < text.index("Model calibration and confidence")
    for table in md_tables((tmp_path / "comparison.md").read_text()):
        assert table in page(text).tables


BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def chromium(url: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *extra, url],
                          capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed (apt-get install chromium)")
def test_report_html_opens_in_headless_chromium_without_console_errors(run, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefined_function();</script></body></html>")
    assert console_messages(chromium(bad.as_uri(), tmp_path, "--dump-dom").stderr)  # the check can fail
    d = run.run_dir
    done = chromium((d / "report.html").as_uri(), tmp_path, "--dump-dom")
    assert done.returncode == 0 and console_messages(done.stderr) == []
    dom = page(done.stdout)
    for table in md_tables((d / "summary.md").read_text()):
        assert table in dom.tables, table[0]
    shot = tmp_path / "shot.png"
    chromium((d / "report.html").as_uri(), tmp_path, "--window-size=1280,2000", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
