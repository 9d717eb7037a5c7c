"""Integer codes of ID arrays, in the IDs' sorted order: how 10M-row arrays of bytes IDs are sorted,
uniqued and joined without comparing Python objects.

`sorted_codes(values)` is `np.unique(values, return_inverse=True)`, result for result: pandas
hashes the values once and sorts only the distinct ones (a few hundred thousand IDs, not 10M
rows), where numpy sorts every row by Python comparisons. Because the codes keep the IDs' order,
sorting or lexsorting by codes gives the same permutation as by the IDs (components/rows.py
relies on it for identical rows, tests/unit/components/test_rows.py checks it).
"""
from typing import Tuple

import numpy as np
import pandas as pd


def sorted_codes(values) -> Tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, each value's index among them), as np.unique(return_inverse=True)."""
    values = np.asarray(values)
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    uniques = np.asarray(uniques)
    if uniques.dtype != values.dtype:  # pandas gives objects for a numpy str or bytes array
        uniques = uniques.astype(values.dtype)
    return uniques, codes.astype(np.intp)
