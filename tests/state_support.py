"""Support for the exact-resume tests (test_resume_exact.py, test_overlap.py): compare two saved
states (nested dicts/lists of tensors and plain values) bit for bit, naming the first difference."""

from __future__ import annotations

import torch


def assert_same(a, b, path="agent"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):  # e.g. the optimisers' per-parameter Adam moments
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path
