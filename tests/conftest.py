"""Shared fixtures: where the shared corpus lives, and its oracle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path | None:
    """../shared/corpus beside the checkout (or $HELIX_CORPUS); None when absent."""
    env = os.environ.get("HELIX_CORPUS")
    cand = Path(env) if env else REPO.parent / "shared" / "corpus"
    return cand if (cand / "MANIFEST.tsv").is_file() else None


CORPUS = corpus_dir()
CORPUS_FILES = (
    sorted(p.name for p in CORPUS.iterdir() if p.is_file() and p.name not in ("MANIFEST.tsv", "README.md"))
    if CORPUS
    else []
)
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="../shared/corpus is absent (set HELIX_CORPUS)")


def oracle(name: str) -> dict:
    """The tshark oracle JSON for corpus file ``name``."""
    assert CORPUS is not None
    return json.loads((CORPUS / "oracle" / f"{name}.json").read_text())


@pytest.fixture
def corpus() -> Path:
    if CORPUS is None:
        pytest.skip("../shared/corpus is absent (set HELIX_CORPUS)")
    return CORPUS
