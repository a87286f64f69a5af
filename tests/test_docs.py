"""The documentation site's plumbing (mkdocs.yml, scripts/mkdocs_hooks.py, scripts/griffe_docstrings.py): README
sections included into pages keep working links, every include names a README section that exists, and the
offline check finds assets fetched from elsewhere. The site itself is built by `make docs` (strict) in CI."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("markdown")
pytest.importorskip("griffe")

from conftest import REPO_ROOT  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hooks = _load("mkdocs_hooks")
docstrings = _load("griffe_docstrings")
DOCS = REPO_ROOT / "docs"


def test_readme_sections_are_balanced_and_every_include_exists():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    marks = re.findall(r"--8<--\s+\[(start|end):([\w-]+)\]", readme)
    starts = [n for kind, n in marks if kind == "start"]
    assert sorted(starts) == sorted(n for kind, n in marks if kind == "end") and len(set(starts)) == len(starts)
    sections = hooks.readme_sections(readme)
    included = {name for md in DOCS.rglob("*.md") for name in hooks.INCLUDE.findall(md.read_text(encoding="utf-8"))}
    assert included, "no page includes README sections"
    assert included <= set(sections), f"pages include README sections that do not exist: {included - set(sections)}"
    assert all(sections[n].strip() for n in included)
    # the markers are HTML comments: invisible on the repository's front page
    assert all(line.startswith("<!-- --8<-- [") and line.endswith("] -->")
               for line in readme.splitlines() if "--8<--" in line)


def test_links_rewritten_for_the_page_they_land_on(tmp_path):
    repo, docs = tmp_path, tmp_path / "docs"
    (docs / "tutorial").mkdir(parents=True)
    (docs / "architecture.md").write_text("# A\n")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "x.py").write_text("")
    anchors = {"robustness": "robustness.md"}
    rw = lambda target, page, here=frozenset(): hooks.rewrite(target, page, set(here), anchors, repo, docs)  # noqa: E731
    assert rw("docs/architecture.md", "index.md") == "architecture.md"
    assert rw("docs/simulated-composite.png", "tutorial/index.md") == "../simulated-composite.png"
    assert rw("#robustness", "spectra.md") == "robustness.md#robustness"
    assert rw("#robustness", "tutorial/index.md") == "../robustness.md#robustness"
    assert rw("#robustness", "robustness.md", {"robustness"}) == "#robustness"  # on its own page
    assert rw("#no-such-heading", "spectra.md") == "#no-such-heading"  # left for MkDocs' validation to report
    assert rw("scripts/x.py", "spectra.md") is None  # a repository file the site does not publish
    assert rw("https://example.org/a", "spectra.md") == "https://example.org/a"
    assert rw("architecture.md#where-data-flow", "index.md") == "architecture.md#where-data-flow"


def test_rewriting_skips_fenced_code_and_keeps_link_text(monkeypatch):
    monkeypatch.setitem(hooks.STATE, "page", "spectra.md")
    monkeypatch.setitem(hooks.STATE, "anchor_pages", {"robustness": "robustness.md"})
    monkeypatch.setitem(hooks.STATE, "repo", REPO_ROOT)
    monkeypatch.setitem(hooks.STATE, "docs", DOCS)
    text = "see [Robustness](#robustness) and [the layers](docs/architecture.md)\n```\nx[a](#robustness)\n```\n"
    out = hooks._rewrite_links(text)
    assert "[Robustness](robustness.md#robustness)" in out and "[the layers](architecture.md)" in out
    assert "x[a](#robustness)" in out


def test_external_assets_are_found(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text(
        '<a href="https://example.org">a link is fine</a><script src="../assets/x.js"></script>'
        '<script src="https://cdn.example.org/m.js"></script><link rel="stylesheet" href="//fonts.example.org/c.css">'
        '<script>import("https://cdn.example.org/mod.mjs")</script>')
    found = hooks.external_assets(tmp_path)
    assert len(found) == 3 and all(f.startswith("a/index.html") for f in found)


def test_docstrings_read_as_markdown():
    doc = ("Uses :func:`~astrocnn.train.fit.train` and :class:`astrocnn.spectra.Spectrum`.\n\n>>> f(1)\n"
           "[500, 200, 10]\n\nParameters\n----------\npath : output file.\nflux, ivar : (n, n_pix) arrays,\n"
           "    continued here.\nAfter the list.\n\n    from astrocnn import x   # an indented example\n")
    out = docstrings.markdown(doc)
    assert "`train`" in out and "`astrocnn.spectra.Spectrum`" in out and ":func:" not in out
    assert "```python\n>>> f(1)\n[500, 200, 10]\n```" in out
    assert "**Parameters**" in out and "----------" not in out
    assert "- `path`: output file.\n- `flux`, `ivar`: (n, n_pix) arrays,\n  continued here.\n\nAfter the list." in out
    assert "\n    from astrocnn import x   # an indented example" in out


def test_a_model_card_renders_as_a_section_with_its_figures_under_models():
    card = ("---\nname: m\nmetrics:\n  accuracy: 0.91234\ntraining_seeds:\n- 0\n- 1\n---\n\n# `m` 1.0: a model\n\n"
            "Text | with a bar.\n\n```bash\n# a comment, not a heading\n```\n\n## Scores\n\n![curve](flag_curve.png) "
            "[site](https://example.org/a.png)\n")
    out = hooks.render_card(card, "m")
    lines = out.split("\n")
    assert lines[0] == "## `m` 1.0: a model" and "### Scores" in lines
    assert "| metrics | accuracy: 0.9123 |" in lines and "| training_seeds | 0, 1 |" in lines
    assert "# a comment, not a heading" in lines  # fenced code untouched
    assert "![curve](models/m/flag_curve.png)" in out and "(https://example.org/a.png)" in out


def test_the_readmes_model_figures_are_the_shipped_ones():
    """The README shows each shipped model's flag figure from docs/figures (GitHub renders the README there);
    it must be the very figure the build drew beside the model's card."""
    shipped = sorted((REPO_ROOT / "src" / "astrocnn" / "zoo" / "models").glob("*/flag_curve.png"))
    assert shipped, "the sdss model ships its flag figure"
    for png in shipped:
        copy = DOCS / "figures" / f"{png.parent.name}_flag_curve.png"
        assert copy.exists() and copy.read_bytes() == png.read_bytes(), f"{copy} is not {png}: copy it again"
