"""Run capture -> decode -> flows -> extractor on a file, as the audit does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helix_audit.capture import open_capture
from helix_audit.decode.core import decode_batch
from helix_audit.flows.table import FlowTable
from helix_audit.model import Anomaly, Observation
from helix_audit.protocols.extract import Extractor


def extract(
    path: Path | str, batch_size: int | None = None, **kwargs: object
) -> tuple[list[Observation], list[Anomaly]]:
    obs, anomalies, _ = drive(Extractor(**kwargs), [path], batch_size)  # type: ignore[arg-type]
    return obs, anomalies


def drive(
    ex: Extractor, paths: Sequence[Path | str], batch_size: int | None = None
) -> tuple[list[Observation], list[Anomaly], list[int]]:
    """Feed the captures, in order and through one flow table, into ``ex``: its observations and
    anomalies, and the direction keys it had marked done before ``finish``."""
    flows = FlowTable()
    for path in paths:
        cap = open_capture(path)
        for batch in cap.batches(batch_size) if batch_size else cap.batches():
            cols = decode_batch(batch)
            ex.add(cols, flows.add(cols))
    done = np.flatnonzero(ex._done).tolist()  # noqa: SLF001
    obs, anomalies = ex.finish()
    return obs, anomalies, done
