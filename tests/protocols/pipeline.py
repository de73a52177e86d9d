"""Run capture -> decode -> flows -> extractor on a file, as the audit does."""

from __future__ import annotations

from pathlib import Path

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.flows.table import FlowTable
from helix_audit.model import Anomaly, Observation
from helix_audit.protocols.extract import Extractor


def extract(
    path: Path | str, batch_size: int | None = None, **kwargs: object
) -> tuple[list[Observation], list[Anomaly]]:
    flows = FlowTable()
    ex = Extractor(**kwargs)  # type: ignore[arg-type]
    cap = open_capture(path)
    batches = cap.batches(batch_size) if batch_size else cap.batches()
    for batch in batches:
        cols = decode_batch(batch)
        ex.add(cols, flows.add(cols))
    return ex.finish()
