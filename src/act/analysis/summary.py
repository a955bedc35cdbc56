"""Count, mean, standard deviation and a seeded 95% bootstrap interval of a set of values (updates per word).

The interval is the percentile bootstrap of the mean: `resamples` times, draw as many values as there are, with
replacement, and take the mean; the interval runs from the 2.5th to the 97.5th percentile of those means. Drawing
with replacement from n values is drawing how many times each distinct value comes up, a multinomial over the
distinct values with their observed frequencies, which is what is computed (the same distribution as drawing
indices, at a cost that does not grow with n). The mean is computed with the same formula (sum of value x count,
over n), so a set of equal values gets exactly that value as mean and interval.

Every row gets its own random generator, seeded from `(seed, key)` (the key: the table and the tag), so a row's
interval does not depend on which other rows exist or in which order they come.
"""

from __future__ import annotations

import zlib

RESAMPLES = 1000
LEVEL = 0.95


def row_rng(seed: int, key: str):
    """The generator of one row: seeded by `seed` and a stable hash of `key`."""
    import numpy as np

    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def bootstrap_interval(values, resamples: int = RESAMPLES, seed: int = 0, key: str = "",
                       level: float = LEVEL) -> tuple[float, float]:
    """(low, high): the percentile bootstrap interval of the mean of `values` (non-empty, finite)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("the bootstrap interval of an empty set of values is undefined")
    if not np.isfinite(values).all():
        raise ValueError("the values contain NaN or infinity")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"the number of bootstrap resamples must be an integer >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"the interval level must lie in (0, 1), got {level}")
    distinct, counts = np.unique(values, return_counts=True)
    n = values.size
    draws = row_rng(seed, key).multinomial(n, counts / n, size=resamples)  # (resamples, distinct)
    means = draws @ distinct / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(values, resamples: int = RESAMPLES, seed: int = 0, key: str = "") -> dict:
    """{"count", "mean_updates", "std_updates", "ci95"}: the row of one tag (std: population std, as in the
    token-type table of `act stats`). An empty set gives count 0 and None elsewhere."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {"count": 0, "mean_updates": None, "std_updates": None, "ci95": None}
    distinct, counts = np.unique(values, return_counts=True)
    mean = float(counts @ distinct / values.size)
    low, high = bootstrap_interval(values, resamples, seed, key)
    return {"count": int(values.size), "mean_updates": mean, "std_updates": float(values.std()),
            "ci95": [low, high]}
