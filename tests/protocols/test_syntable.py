"""The pending-SYN columns behave as the dict they replace."""

from __future__ import annotations

import numpy as np

from helix_audit.protocols.syntable import SynTable


def test_syn_table_matches_a_dict() -> None:
    rng = np.random.default_rng(3)
    table, ref = SynTable(4), {}
    for _ in range(2000):
        op, k = int(rng.integers(0, 4)), int(rng.integers(0, 5000))
        if op == 0:
            value = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**40)))
            table[k], ref[k] = value, value
        elif op == 1:
            assert table.pop(k, None) == ref.pop(k, None)
        elif op == 2:
            keys = np.unique(rng.integers(0, 9000, 20))
            keys = keys[[int(x) not in ref for x in keys]]
            seqs, births = rng.integers(0, 2**32, keys.size), rng.integers(0, 2**40, keys.size)
            table.put(keys, seqs, births)
            ref.update({int(a): (int(s), int(b)) for a, s, b in zip(keys, seqs, births, strict=True)})
        else:
            assert (k in table) == (k in ref)
        assert len(table) == len(ref)
    assert dict(table.items()) == ref
    assert sorted(table) == sorted(ref)
    probe = np.arange(12000)
    assert table.pending(probe).tolist() == [int(k) in ref for k in probe]
    table.clear()
    assert len(table) == 0 and 5 not in table and list(table.items()) == []
