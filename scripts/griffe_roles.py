"""A griffe extension for the API reference (``mkdocs.yml``): docstrings written for ``help()`` read as Markdown.

- Sphinx roles (``:func:`~astrocnn.train.fit.train```), which Markdown would show verbatim, become code spans:
  ``~a.b.c`` shows ``c``, anything else its full name.
- Doctest examples (``>>>`` lines and the output after them) become Python code blocks; as plain text Markdown
  would reflow them and read ``[500, 200, 10]`` as a link.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const|ref|term):`([^`]+)`")


def plain(docstring: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1).strip()
        if "<" in name and name.endswith(">"):  # :ref:`text <target>`
            name = name[: name.index("<")].strip()
        if name.startswith("~"):
            name = name[1:].rsplit(".", 1)[-1]
        return f"`{name}`"
    return ROLE.sub(sub, docstring)


def fence_doctests(docstring: str) -> str:
    out: list[str] = []
    inside = False
    for line in docstring.split("\n"):
        starts = line.lstrip().startswith(">>>")
        if starts and not inside:
            out += ["```python"]
            inside = True
        elif inside and not line.strip():
            out += ["```"]
            inside = False
        out.append(line.strip() if inside else line)
    if inside:
        out.append("```")
    return "\n".join(out)


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if getattr(obj, "docstring", None) is not None:
            obj.docstring.value = fence_doctests(plain(obj.docstring.value))
