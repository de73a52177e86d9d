"""Flow-table codes and coded text columns give what the object-array operations give."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.policy.flowcodes import FlowCodes, TextColumn, code_type


def _frame(rng: random.Random, n: int, n_orig: int, n_resp: int) -> pd.DataFrame:
    orig = [f"10.0.{k // 250}.{k % 250}" for k in range(n_orig)]
    resp = [f"192.0.{k // 250}.{k % 250}" for k in range(n_resp)] + orig[:3]  # some on both sides
    return pd.DataFrame(
        {
            "orig_h": [rng.choice(orig) for _ in range(n)],
            "resp_h": [rng.choice(resp) for _ in range(n)],
            "transport": [rng.choice(["tcp", "udp", "icmp", None]) for _ in range(n)],
        }
    )


@pytest.mark.parametrize(("n_orig", "n_resp"), [(3, 4), (5, 300), (300, 5), (40_000, 30)])
def test_hosts_are_one_code_space_in_first_appearance_order(n_orig, n_resp):
    rng = random.Random(n_orig + n_resp)
    frame = _frame(rng, 50_000, n_orig, n_resp)
    frame.loc[rng.sample(range(len(frame)), 7), "resp_h"] = None  # missing addresses: code -1
    oc, rc, addresses = FlowCodes(frame).hosts()
    both = np.concatenate([frame["orig_h"].to_numpy(dtype=object), frame["resp_h"].to_numpy(dtype=object)])
    assert addresses == [a for a in pd.unique(both).tolist() if isinstance(a, str)]
    table = np.array([*addresses, None], dtype=object)
    assert table[oc].tolist() == frame["orig_h"].tolist()
    assert [None if pd.isna(a) else a for a in frame["resp_h"]] == table[rc].tolist()


def test_equals_is_isin_on_the_text_and_missing_matches_nothing():
    rng = random.Random(2)
    frame = _frame(rng, 2_000, 5, 5)
    codes = FlowCodes(frame)
    text = frame["transport"].to_numpy(dtype=object)
    for wanted in [("tcp",), ("udp", "tcp"), ("icmp", "icmp6"), ("ip-2",), ()]:
        assert (codes.equals("transport", *wanted) == np.isin(text, wanted)).all()


@pytest.mark.parametrize(("n", "kind"), [(0, np.int8), (126, np.int8), (127, np.int16), (40_000, np.int32)])
def test_code_type_holds_codes_and_minus_one(n, kind):
    assert code_type(n) is kind
    assert np.iinfo(kind).min <= -1 and n - 1 <= np.iinfo(kind).max


@pytest.mark.parametrize("n", [0, 5, 1_000])
def test_text_column_is_what_pandas_stores_for_the_object_array(n):
    rng = random.Random(n)
    for _ in range(20):
        col = TextColumn(n, rng.choice(["unknown", None]))
        texts = [None, "a", "b", "why: it"]
        for _ in range(rng.randint(0, 4)):
            rows = np.flatnonzero(np.array([rng.random() < 0.3 for _ in range(n)], dtype=bool))
            picked = [rng.choice(texts) for _ in range(3)]
            col.set(rows, picked, np.array([rng.randrange(3) for _ in rows], dtype=np.intp))
        plain = np.array([*col.values, None], dtype=object)[:-1][col.codes]
        want, got = pd.DataFrame({"x": range(n)}), pd.DataFrame({"x": range(n)})
        want["c"], got["c"] = plain, col.column()
        pd.testing.assert_frame_equal(got, want)
        assert (col.mask("a", None) == np.isin(plain, ["a", None])).all()
