"""MkDocs hooks (``mkdocs.yml: hooks``): README sections included into the site keep working links.

The site's pages include sections of the README with ``pymdownx.snippets`` (``--8<-- "README.md:NAME"``), so the
text has one source. The README's links are written for the repository's front page: ``docs/architecture.md``
(relative to the repository root) and ``#robustness`` (an anchor of the README, which on the site may sit on
another page). After the snippets are included, and before MkDocs resolves and validates links, a Markdown
preprocessor rewrites them for the page they now sit on:

- ``docs/PATH`` -> ``PATH`` relative to the page;
- ``#anchor`` of a heading that is not on this page but on another page that includes the README section holding
  it -> ``that-page.md#anchor``;
- a path to a repository file outside ``docs/`` (which the site does not publish) -> the link text alone.

The model cards shipped in the package (``src/astrocnn/zoo/models/NAME/card.md``) are rendered where a page has
the line ``<!-- astrocnn:model-cards -->``: their front matter as a table, their text with headings one level
down, and the figures beside them published under ``models/NAME/``.

Anything else is left for MkDocs' link validation (``--strict`` fails on what it cannot resolve). Fenced code is
never touched.

The site must read offline: notebook pages lose the loaders nbconvert puts in them for MathJax and Mermaid from a
CDN (the notebooks' formulas then show as TeX), and after the build every page is checked for assets fetched from
elsewhere (scripts, style sheets, fonts, images); each one found is a warning, which ``--strict`` turns into a
failed build.
"""
from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from markdown import Extension
from markdown.extensions.toc import slugify
from markdown.preprocessors import Preprocessor

#: ``--8<-- "README.md:name"`` lines in a page
INCLUDE = re.compile(r'^\s*-+8<-+\s+"README\.md:([\w-]+)"\s*$', re.M)
#: section markers in the README
SECTION = re.compile(r"--8<--\s+\[(start|end):([\w-]+)\]")
#: inline links and images: ``[text](target)`` / ``![alt](target)``, target without spaces
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^(```|~~~)")
#: what nbconvert's notebook template loads from CDNs: MathJax (an empty src when no URL is configured) and the
#: Mermaid loader (a module script importing from cdnjs when a diagram is present)
NB_MATHJAX = re.compile(r'<script src="[^"]*"> </script>\s*(?=<!-- MathJax configuration -->)')
NB_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>', re.S)
#: an asset fetched from another site: script or image sources, style sheets, imports, CSS urls
EXTERNAL = re.compile(r'<(?:script|img|iframe|source)\b[^>]*\ssrc="(?:https?:)?//|<link\b[^>]*\shref="(?:https?:)?//'
                      r'|import\(\s*["\'](?:https?:)?//|url\(\s*["\']?(?:https?:)?//')
#: where a page wants the model cards
CARDS_MARK = "<!-- astrocnn:model-cards -->"
#: the model folders, relative to the repository
MODELS = Path("src/astrocnn/zoo/models")
log = logging.getLogger("mkdocs.hooks.astrocnn")

#: state shared between the hooks and the preprocessor (MkDocs renders one page at a time)
STATE: dict = {"page": "", "anchor_pages": {}, "repo": Path("."), "docs": Path("docs")}


def readme_sections(readme: str) -> dict[str, str]:
    """The text of each ``[start:NAME]`` ... ``[end:NAME]`` section of the README."""
    sections: dict[str, list[str]] = {}
    open_: list[str] = []
    for line in readme.splitlines():
        m = SECTION.search(line)
        if m:
            (open_.append if m.group(1) == "start" else open_.remove)(m.group(2))
            sections.setdefault(m.group(2), [])
            continue
        for name in open_:
            sections[name].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def headings(text: str) -> set[str]:
    """Anchors (toc slugs) of the Markdown headings in ``text``, outside fenced code."""
    return {slugify(h, "-") for h in HEADING.findall(_outside_fences(text))}


def _outside_fences(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def rewrite(target: str, page: str, here: set[str], anchor_pages: dict[str, str], repo: Path,
            docs: Path) -> str | None:
    """The new target of a link on ``page`` (a path inside the docs folder), or None to drop the link."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
        return target  # absolute URL or site-absolute path: not ours to change
    base = posixpath.dirname(page)
    if target.startswith("#"):
        anchor = target[1:]
        if anchor in here or anchor not in anchor_pages:
            return target
        return posixpath.relpath(anchor_pages[anchor], base or ".") + target
    path, _, frag = target.partition("#")
    docs_rel = docs.relative_to(repo).as_posix() + "/"
    if path.startswith(docs_rel):
        new = posixpath.relpath(path[len(docs_rel):], base or ".")
        return new + (f"#{frag}" if frag else "")
    if not (docs / base / path).exists() and (repo / path).exists():
        return None  # a repository file the site does not publish
    return target


def _rewrite_links(text: str) -> str:
    here = headings(text)
    out, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line.strip()):
            fenced = not fenced
        if not fenced and "](" in line:
            def sub(m: re.Match) -> str:
                new = rewrite(m.group(3), STATE["page"], here, STATE["anchor_pages"], STATE["repo"],
                              STATE["docs"])
                return m.group(2) if new is None else f"{m.group(1)}[{m.group(2)}]({new})"
            line = LINK.sub(sub, line)
        out.append(line)
    return "\n".join(out)


class _ReadmeLinks(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return _rewrite_links("\n".join(lines)).split("\n")


class ReadmeLinks(Extension):
    def extendMarkdown(self, md) -> None:  # noqa: N802 (Markdown's API)
        # pymdownx.snippets includes files at priority 32: run just after it, before anything reads links
        md.preprocessors.register(_ReadmeLinks(md), "astrocnn_readme_links", 31)


def on_config(config, **kwargs):
    repo = Path(config["config_file_path"]).resolve().parent
    docs = Path(config["docs_dir"]).resolve()
    sections = readme_sections((repo / "README.md").read_text(encoding="utf-8"))
    anchor_pages: dict[str, str] = {}
    for md in sorted(docs.rglob("*.md")):
        page = md.relative_to(docs).as_posix()
        for name in INCLUDE.findall(md.read_text(encoding="utf-8")):
            for anchor in headings(sections.get(name, "")):
                anchor_pages.setdefault(anchor, page)
    STATE.update(anchor_pages=anchor_pages, repo=repo, docs=docs)
    config["markdown_extensions"].append(ReadmeLinks())
    return config


def render_card(text: str, name: str) -> str:
    """A model card (Markdown with YAML front matter) as a section of a page: the front matter as a table, the
    headings one level down, images pointing at ``models/NAME/``."""
    import yaml  # MkDocs depends on PyYAML

    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front) or {}
    rows = ["| field | value |", "|---|---|"]
    for key, value in meta.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        cell = str(value).replace("|", "\\|")
        rows.append(f"| {key} | {cell} |")
    out, fenced = [], False
    for line in body.strip("\n").split("\n"):
        if FENCE.match(line.strip()):
            fenced = not fenced
        if not fenced and HEADING.match(line) and not line.startswith("######"):
            line = "#" + line
        out.append(LINK.sub(lambda m: f"{m.group(1)}[{m.group(2)}](models/{name}/{m.group(3)})"
                            if m.group(1) and "/" not in m.group(3) and ":" not in m.group(3) else m.group(0), line))
    return "\n".join(["\n".join(out[:1]), "", *rows, "", *out[1:]])


def model_cards(repo: Path) -> str:
    """Every shipped model's card, rendered (see :func:`render_card`)."""
    cards = sorted((repo / MODELS).glob("*/card.md"))
    return "\n\n".join(render_card(c.read_text(encoding="utf-8"), c.parent.name) for c in cards) or "(none yet)"


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File
    repo = Path(config["config_file_path"]).resolve().parent
    for png in sorted((repo / MODELS).glob("*/*.png")):
        files.append(File.generated(config, f"models/{png.parent.name}/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown, page, **kwargs):
    STATE["page"] = page.file.src_uri
    if CARDS_MARK in markdown:
        markdown = markdown.replace(CARDS_MARK, model_cards(STATE["repo"]))
    return markdown


def on_post_page(output, page, **kwargs):
    if page.file.src_uri.endswith(".ipynb"):
        output = NB_MERMAID.sub("", NB_MATHJAX.sub("", output))
    return output


def external_assets(site: Path) -> list[str]:
    """``file: match`` for every asset in the built site's HTML that would be fetched from another site."""
    found = []
    for html in sorted(site.rglob("*.html")):
        for m in EXTERNAL.finditer(html.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{html.relative_to(site)}: {m.group(0)[:80]}")
    return found


def on_post_build(config, **kwargs):
    for item in external_assets(Path(config["site_dir"])):
        log.warning("external asset (the site must read offline): %s", item)


__all__ = ["on_config", "on_files", "on_page_markdown", "render_card", "model_cards", "on_post_page", "on_post_build", "rewrite", "readme_sections",
           "headings", "external_assets"]
