"""Where ready-made models live, what identifies them, and their cards.

Zoo layer. A model is a folder: ``model.json`` (the manifest: name, version, kind, its component networks
by file name and SHA-256, the decoding settings), the components' weights (safetensors, each named
``<role>-<first 12 hex digits of its SHA-256>.safetensors``, so a file name pins its content), and ``card.md``
(the model card: YAML front matter and Markdown). The model's hash is the SHA-256 of its manifest (which
holds its files' hashes), so ``sdss@<hash>`` pins one exact model. The models shipped with astrocnn are
package data under ``astrocnn/zoo/models/<name>/``; a model folder anywhere else (one a user built with
``astrocnn zoo build``, or an older version kept to roll back to) loads by its path.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from astrocnn.core.errors import InputError
from astrocnn.core.io import write_text_atomic

MODELS_DIR = Path(__file__).resolve().parent / "models"
MANIFEST = "model.json"
CARD = "card.md"
MODEL_FORMAT = "astrocnn-model"
MODEL_FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The model's identity: the SHA-256 of its canonical manifest (first 12 hex digits)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ModelInfo:
    """A model folder, read and checked: its manifest, identity and card."""

    path: Path
    manifest: dict[str, Any]
    hash: str

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def component(self, role: str) -> Path:
        return self.path / self.manifest["components"][role]["file"]

    def card(self) -> "ModelCard":
        return ModelCard.read(self.path / CARD)


def read_model(path: str | os.PathLike, *, verify: bool = True) -> ModelInfo:
    """Read a model folder; ``verify`` checks every component file against the SHA-256 in the manifest."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, f"not an astrocnn model folder (no {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(path / MANIFEST, f"not a readable model manifest ({exc})") from exc
    if manifest.get("format") != MODEL_FORMAT:
        raise InputError(path / MANIFEST, "not an astrocnn model manifest")
    if int(manifest.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise InputError(path / MANIFEST, f"model format {manifest['format_version']} is newer than this astrocnn")
    if verify:
        for role, entry in manifest["components"].items():
            f = path / entry["file"]
            if not f.exists():
                raise InputError(f, f"the model's {role} weights are missing")
            if file_sha256(f) != entry["sha256"]:
                raise InputError(f, f"the model's {role} weights are not the ones its manifest names (SHA-256 differs)")
    return ModelInfo(path=path, manifest=manifest, hash=manifest_hash(manifest))


def shipped_models() -> list[ModelInfo]:
    """The models that come with astrocnn, by name."""
    if not MODELS_DIR.is_dir():
        return []
    return [read_model(p, verify=False) for p in sorted(MODELS_DIR.iterdir()) if (p / MANIFEST).exists()]


_PIN = re.compile(r"^(?P<name>[\w.-]+?)(?:@(?P<hash>[0-9a-f]{4,64}))?$")


def find_model(name_or_path: str | os.PathLike) -> ModelInfo:
    """A shipped model by name (``"sdss"``, or pinned: ``"sdss@1a2b3c4d5e6f"``), or a model folder by path."""
    text = os.fspath(name_or_path)
    if Path(text).is_dir():
        return read_model(text)
    m = _PIN.match(text)
    known = {info.name: info for info in shipped_models()}
    if m is None or m.group("name") not in known:
        raise InputError(None, f"no model {text!r}: shipped models are {sorted(known) or 'none'}, or give a model folder")
    info = read_model(known[m.group("name")].path)
    if m.group("hash") and not info.hash.startswith(m.group("hash")):
        raise InputError(None, f"model {m.group('name')} here is {info.name}@{info.hash}, not @{m.group('hash')}: "
                               "load the pinned version from its folder")
    return info


@dataclass
class ModelCard:
    """A model card: YAML front matter (name, version, task, inputs, training data, metrics, licence ...) and a
    Markdown body (intended use, training, results, limitations)."""

    meta: dict[str, Any]
    body: str

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ModelCard":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(path, "the model has no card (every ready-made model ships one)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot read the model card ({exc})") from None
        if not text.startswith("---\n"):
            raise InputError(path, "a model card starts with YAML front matter between '---' lines")
        head, sep, body = text[4:].partition("\n---\n")
        if not sep:
            raise InputError(path, "the model card's front matter has no closing '---' line")
        try:
            meta = yaml.safe_load(head) or {}
        except yaml.YAMLError as exc:
            raise InputError(path, f"the model card's front matter is not valid YAML ({exc})") from exc
        return cls(meta=dict(meta), body=body)

    def text(self) -> str:
        return "---\n" + yaml.safe_dump(self.meta, sort_keys=False, allow_unicode=True) + "---\n" + self.body

    def write(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, self.text())
