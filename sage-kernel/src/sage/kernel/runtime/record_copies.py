"""Own copies of records for every consumer after the first (unless ``object_reuse``).

Where one record reaches several consumers (a broadcast, branches of one stream), each gets
its own copy, so a function that changes its input cannot change what its siblings see, and
the local runtime gives the results Ray gives (Ray copies by pickling every batch it sends).
A pickle round trip is the copy: several times faster than ``copy.deepcopy`` on plain data;
records that cannot be pickled are deep-copied instead.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any


def copy_records(batch: list[Any]) -> list[Any]:
    """A deep copy of ``batch``."""
    try:
        return pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return copy.deepcopy(batch)
