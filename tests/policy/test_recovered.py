"""classify._recovered (integer codes) against the pandas group-by it replaces."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from helix_audit.policy.classify import _recovered
from helix_audit.policy.flowcodes import FlowCodes


def _by_pandas(named: pd.DataFrame, dest: np.ndarray, ok: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    out = np.zeros(len(named), dtype=bool)
    if not blocked.any():
        return out
    df = named[["orig_h", "target_port", "first_ts"]].assign(dest=dest)
    last_ok = df[ok].groupby(["orig_h", "dest", "target_port"])["first_ts"].max()
    part = df[blocked]
    keys = pd.MultiIndex.from_frame(part[["orig_h", "dest", "target_port"]])
    later = last_ok.reindex(keys).to_numpy()
    out[blocked] = np.nan_to_num(later, nan=-np.inf) > part["first_ts"].to_numpy()
    return out


def test_recovered_matches_the_group_by():
    rng = random.Random(7)
    recovered = 0
    for trial in range(60):
        n = rng.randint(1, 300)
        hosts = [f"10.0.0.{i}" for i in range(rng.randint(1, 6))] + [None]
        names = ["a.example", "b.example", None, np.nan, "10.0.0.1"]
        named = pd.DataFrame(
            {
                "orig_h": pd.array([rng.choice(hosts) for _ in range(n)], dtype="str"),
                "resp_h": pd.array([rng.choice(hosts) for _ in range(n)], dtype="str"),
                "target_port": np.array([rng.choice([80, 443, 8080]) for _ in range(n)], dtype=np.int64),
                "first_ts": np.array(
                    [rng.choice([np.nan, rng.uniform(0, 10), 5.0]) for _ in range(n)], dtype=float
                ),
            }
        )
        dest = np.array([rng.choice(names) for _ in range(n)], dtype=object)
        state = np.array([rng.randrange(3) for _ in range(n)])
        ok, blocked = state == 1, state == 2
        if trial % 10 == 0:
            blocked[:] = False
        want = _by_pandas(named, dest, ok, blocked)
        got = _recovered(named, dest, ok, blocked, FlowCodes(named))
        assert got.tolist() == want.tolist()
        assert trial % 10 == 0 or blocked.any()
        recovered += int(got.sum())
    assert recovered > 20  # later successes were found, not only ruled out
