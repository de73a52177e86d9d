"""Flow-table codes and coded text columns give what the object-array operations give."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.policy.flowcodes import (
    FEW_OBJECTS,
    FlowCodes,
    TextColumn,
    _few_objects,
    _few_objects_py,
    code_type,
    few_texts,
)


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
def test_text_column_is_the_categorical_of_the_object_array(n):
    """column(): the values of the object array ``values[codes]`` (None missing) as a Categorical
    of the texts used, ascending (so grouping and sorting by it order as the texts do)."""
    rng = random.Random(n)
    for _ in range(20):
        col = TextColumn(n, rng.choice(["unknown", None]))
        texts = [None, "a", "b", "why: it"]
        for _ in range(rng.randint(0, 4)):
            rows = np.flatnonzero(np.array([rng.random() < 0.3 for _ in range(n)], dtype=bool))
            picked = [rng.choice(texts) for _ in range(3)]
            col.set(rows, picked, np.array([rng.randrange(3) for _ in rows], dtype=np.intp))
        plain = np.array([*col.values, None], dtype=object)[:-1][col.codes]
        got = pd.Series(col.column())
        assert isinstance(got.dtype, pd.CategoricalDtype) and got.cat.codes.dtype == np.int8
        cats = got.cat.categories.tolist()
        assert cats == sorted({v for v in plain.tolist() if v is not None})
        assert got.cat.categories.dtype == object
        want = pd.Series(plain, dtype=object)
        assert (got.isna().to_numpy() == pd.isna(plain)).all()
        assert got.astype(object).where(got.notna(), None).tolist() == want.tolist()
        assert (col.mask("a", None) == np.isin(plain, ["a", None])).all()


def test_text_column_codes_widen_as_texts_are_added():
    """The codes start a byte a row and widen (int16, ...) only when the texts outgrow them; the
    values read the same across the widening."""
    n = 1_000
    rng = np.random.default_rng(3)
    col = TextColumn(n, "start")
    assert col.codes.dtype == np.int8
    rows = np.flatnonzero(rng.random(n) < 0.5)
    col.set(rows, ["x"])
    assert col.codes.dtype == np.int8
    many = [f"t{i:04d}" for i in range(300)]
    group_of = rng.integers(0, len(many), rows.shape[0])
    col.set(rows, many, group_of)
    assert col.codes.dtype == np.int16
    got = pd.Series(col.column())
    want = np.full(n, "start", dtype=object)
    want[rows] = np.asarray(many, dtype=object)[group_of]
    assert got.astype(object).tolist() == want.tolist()
    assert got.cat.categories.tolist() == sorted(set(want.tolist()))


def _kernel_vs_python(ids: np.ndarray, cap: int) -> None:
    got = [
        np.zeros(ids.shape[0], dtype=np.int8),
        np.zeros(cap, dtype=np.int64),
        np.zeros(cap, dtype=np.int64),
    ]
    want = [a.copy() for a in got]
    k = _few_objects(ids, *got)
    assert k == _few_objects_py(ids, *want)
    if k >= 0:
        for a, b in zip(got, want, strict=True):
            assert (a[: k if a.shape[0] == cap else None] == b[: k if b.shape[0] == cap else None]).all()


@pytest.mark.parametrize("seed", range(6))
def test_few_objects_kernel_is_the_python_path(seed):
    """Codes by identity in order of first appearance, first rows, and -1 past the capacity: on
    runs, scattered values, one value, none, and more distinct values than fit."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3_000))
    for distinct in (1, 3, 40, 99, 100, 101, 500):
        pool = rng.integers(-(2**62), 2**62, distinct)
        ids = pool[rng.integers(0, distinct, n)]
        _kernel_vs_python(ids, FEW_OBJECTS)
        _kernel_vs_python(np.sort(ids), FEW_OBJECTS)  # runs
        _kernel_vs_python(ids, 7)
    _kernel_vs_python(np.zeros(0, dtype=np.int64), FEW_OBJECTS)


def _values(column) -> list:
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in column]


@pytest.mark.parametrize("seed", range(4))
def test_few_texts_reads_as_the_column(seed):
    """Texts, None and NaN (missing), equal texts that are different objects (one category):
    the Categorical reads as the array, categories distinct and ascending; the str dtype's array too."""
    rng = random.Random(seed)
    pool = ["sni", "dns_answer", "".join(["s", "ni"]), None, float("nan"), "zz", 'a b\\"c', "é"]
    for n in (0, 1, 50, 5_000):
        objects = np.empty(n, dtype=object)
        objects[:] = [rng.choice(pool) for _ in range(n)]
        got = few_texts(objects)
        assert got is not None and got.codes.dtype == np.int8
        assert _values(np.asarray(got, dtype=object)) == _values(objects)
        assert got.categories.tolist() == sorted({v for v in objects.tolist() if isinstance(v, str)})
        texts = pd.array(objects, dtype="str")
        again = few_texts(texts)
        assert again is not None and _values(np.asarray(again, dtype=object)) == _values(objects)


def test_few_texts_leaves_other_columns():
    """None (the column stays as it is) for non-text objects, too many distinct objects, numbers,
    Categoricals and non-contiguous arrays."""
    mixed = np.array(["a", 3, None] * 10, dtype=object)
    assert few_texts(mixed) is None
    many = np.array([f"h{i}" for i in range(FEW_OBJECTS + 1)], dtype=object)
    assert few_texts(many) is None
    assert few_texts(many[:FEW_OBJECTS]) is not None
    assert few_texts(np.arange(10)) is None
    assert few_texts(pd.Categorical(["a", "b"])) is None
    assert few_texts(np.array(["a", "b"] * 4, dtype=object)[::2]) is None
    assert few_texts(np.array([("x",), ()], dtype=object)) is None
