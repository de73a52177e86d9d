"""The tail's shortcuts (DNS evidence of one capture taken in C, a finding copied with its new
evidence as one dict, the latest answer per flow found by one sort, destination groups from
Categorical codes) give what the general paths give, on mutated and hostile inputs too."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.dnsanswers import _latest
from helix_audit.model import Evidence, Finding
from helix_audit.policy import dnsevidence
from helix_audit.policy.classify import _row_codes
from helix_audit.policy.flowcodes import objects_at

from . import reference
from .factory import Capture, lookup_finding

HOSTS = [f"10.0.{k // 200}.{k % 200 + 1}" for k in range(12)]


def _finding(rng: random.Random, sources: tuple[str, ...], evidence: tuple[Evidence, ...]) -> Finding:
    return lookup_finding(
        sources[0], rng.choice(["a.example", "B.example.", "c.example", None]), evidence, sources
    )


@pytest.mark.parametrize("seed", range(6))
def test_dns_evidence_of_one_capture_equals_the_reference(seed: int) -> None:
    """One file (the first lookups taken as they come), findings with one source or a few, some
    listing lookup frames already (the per-lookup path)."""
    rng = random.Random(seed)
    c = Capture()
    for _ in range(rng.choice([0, 5, 300])):
        c.lookup(
            rng.choice(HOSTS), "10.0.0.53", rng.choice(["a.example", "b.example"]), t=rng.choice([0, 1, 2])
        )
    findings = []
    for _ in range(40):
        sources = tuple(rng.sample(HOSTS, rng.choice([1, 1, 3, 10])))
        listed = ()
        if c.obs and rng.random() < 0.3:
            obs = rng.choice(c.obs)
            listed = (Evidence(obs.file, (obs.frame,), obs.ts, obs.ts, ()),)
        findings.append(_finding(rng, sources, listed))
    got = dnsevidence.with_dns_evidence(findings, c.obs)
    assert got == reference.with_dns_evidence(findings, c.obs)
    assert [f.evidence for f in got] == [f.evidence for f in reference.with_dns_evidence(findings, c.obs)]
    for before, after in zip(findings, got, strict=True):  # everything else as it was
        assert {**vars(after), "evidence": before.evidence} == vars(before)


def test_a_finding_with_new_evidence_is_the_replaced_dataclass() -> None:
    rng = random.Random(1)
    f = _finding(rng, ("10.0.0.1",), ())
    ev = (Evidence("a.pcap", (1, 2), 1.0, 2.0, (3,), "dns"),)
    got = dnsevidence._with_evidence(f, ev)
    want = dataclasses.replace(f, evidence=ev)
    assert got == want and vars(got) == vars(want) and type(got) is Finding
    assert f.evidence == ()  # the original untouched


@pytest.mark.parametrize("seed", range(3))
def test_the_latest_answer_by_one_key_equals_the_coded_groups(seed: int) -> None:
    """Groups past what one integer key holds take the coded path; both agree with a row-by-row
    search everywhere (ties: the last answer; flows before every answer, rank -1; groups no answer
    has)."""
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        na, nf = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        groups, ranks = int(rng.integers(1, 8)), int(rng.integers(1, 10))
        scale = 1 << 58 if rng.random() < 0.2 else 1
        a_group, a_rank = rng.integers(0, groups, na) * scale, rng.integers(0, ranks, na)
        f_group, f_rank = rng.integers(0, groups + 2, nf) * scale, rng.integers(-1, ranks + 1, nf)
        assert np.array_equal(
            _latest(a_group, a_rank, f_group, f_rank), _latest_rows(a_group, a_rank, f_group, f_rank)
        )


def _latest_rows(
    a_group: np.ndarray, a_rank: np.ndarray, f_group: np.ndarray, f_rank: np.ndarray
) -> np.ndarray:
    """``_latest`` flow by flow: among the answers of the flow's group at or before its rank, the
    greatest rank, the last row among equals."""
    out = np.full(f_group.shape[0], -1)
    for k, (g, r) in enumerate(zip(f_group, f_rank, strict=True)):
        rows = np.flatnonzero((a_group == g) & (a_rank <= r))
        if rows.shape[0]:
            best = a_rank[rows].max()
            out[k] = rows[a_rank[rows] == best][-1]
    return out


def _partition(codes: np.ndarray) -> list[int]:
    """Codes renumbered by first appearance: equal iff the two codings group rows alike."""
    return pd.factorize(codes)[0].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_row_codes_of_a_categorical_group_rows_as_its_values_do(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = ["a", "b", "", "x.example", ("t", "u"), ("t",), None]
    n = int(rng.integers(1, 300))
    picked = [values[i] for i in rng.integers(0, len(values), n)]
    plain = pd.Series(pd.array(picked, dtype=object))
    texts = pd.Series(pd.Categorical([v if isinstance(v, str) else None for v in picked]))
    index = pd.Index(
        [v for v in dict.fromkeys(picked) if isinstance(v, tuple)], dtype=object, tupleize_cols=False
    )
    tuples = pd.Series(
        pd.Categorical.from_codes([index.get_loc(v) if isinstance(v, tuple) else -1 for v in picked], index)
    )
    rows = np.sort(rng.choice(n, int(rng.integers(0, n + 1)), replace=False))
    for column in (plain, texts, tuples):
        codes, count = _row_codes(column, rows)
        assert codes.shape == rows.shape and (codes < count).all() and (codes >= -1).all()
        want, uniques = pd.factorize(objects_at(column, rows))
        assert _partition(codes) == _partition(want)
        assert ((codes < 0) == (want < 0)).all()
