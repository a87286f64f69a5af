"""A griffe extension for the API reference (``mkdocs.yml``): docstrings written for ``help()`` read as Markdown.

astrocnn's docstrings are plain text for a terminal. For the site:

- Sphinx roles (``:func:`~astrocnn.train.fit.train```), which Markdown would show verbatim, become code spans:
  ``~a.b.c`` shows ``c``, anything else its full name;
- doctest examples (``>>>`` lines and the output after them) become Python code blocks (as text, Markdown would
  reflow them and read ``[500, 200, 10]`` as a link);
- ``name : description`` lines (with indented continuation lines) become a list, instead of one run-on paragraph;
- numpy-style section titles underlined with dashes (``Parameters`` / ``----------``) become bold lines, not
  headings that would enter the page's table of contents.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const|ref|term):`([^`]+)`")
FIELD = re.compile(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+:\s+(.*)$")
UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def plain(docstring: str) -> str:
    """Sphinx roles -> code spans."""
    def sub(m: re.Match) -> str:
        name = m.group(1).strip()
        if "<" in name and name.endswith(">"):  # :ref:`text <target>`
            name = name[: name.index("<")].strip()
        if name.startswith("~"):
            name = name[1:].rsplit(".", 1)[-1]
        return f"`{name}`"
    return ROLE.sub(sub, docstring)


def fence_doctests(docstring: str) -> str:
    """``>>>`` examples and their output -> fenced Python code."""
    out: list[str] = []
    inside = False
    for line in docstring.split("\n"):
        if line.lstrip().startswith(">>>") and not inside:
            out.append("```python")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line.strip() if inside else line)
    if inside:
        out.append("```")
    return "\n".join(out)


def structure(docstring: str) -> str:
    """``name : text`` fields -> list items; dash-underlined titles -> bold lines. Code (fenced or indented
    under a ``::`` / blank line) is left alone."""
    lines = docstring.split("\n")
    out: list[str] = []
    fenced = in_item = False
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            fenced = not fenced
            in_item = False
            out.append(line)
            continue
        if fenced:
            out.append(line)
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and UNDERLINE.match(nxt) and not UNDERLINE.match(line):
            out += ["", f"**{line.strip()}**", ""]
            in_item = False
            continue
        if UNDERLINE.match(line) and out and out[-1] == "":
            continue  # the underline of a title just converted
        m = FIELD.match(line)
        if m and not line.startswith(" "):
            if not in_item and out and out[-1].strip():
                out.append("")
            names = ", ".join(f"`{n.strip()}`" for n in m.group(1).split(","))
            out.append(f"- {names}: {m.group(2)}")
            in_item = True
            continue
        if in_item and line.startswith(" ") and line.strip():
            out.append("  " + line.strip())  # a field's continuation line
            continue
        if in_item and line.strip():
            out.append("")  # text right after a list is a paragraph of its own
        in_item = False
        out.append(line)
    return "\n".join(out)


def markdown(docstring: str) -> str:
    return structure(fence_doctests(plain(docstring)))


class DocstringsAsMarkdown(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if getattr(obj, "docstring", None) is not None:
            obj.docstring.value = markdown(obj.docstring.value)
