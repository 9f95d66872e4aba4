"""Instructions per record, counted by valgrind: a measure that other programs on the machine
cannot disturb, for comparisons that wall-clock runs on a shared 2-core machine cannot settle.

Each case runs under ``valgrind --tool=callgrind`` twice, with a few records and with
``--records``, in a fresh process; the difference over the difference in records is the cost
of one record, start-up and the job's fixed costs excluded. Prints the cases and two ratios:
the plain loop over SAGE (the instruction side of ``local_throughput.py``'s ratio) and what the
built-in timings cost (``metrics_overhead.py``'s question). Instructions are not time (a cache
miss or a thread hand-over costs time and few instructions), so read these beside the
wall-clock benchmarks, not instead of them. Run:
    python benchmarks/instruction_counts.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEW = 1_000

CASES = {
    "loop": "plain Python loop (local_throughput.plain_loop)",
    "sage": "SAGE fused at p1 (local_throughput.sage_pipeline)",
    "timings-on": "SAGE fused at p1, built-in timings on",
    "timings-off": "SAGE fused at p1, built-in timings off",
    "timings-on-hop": "SAGE with a rebalance to p2, timings on",
    "timings-off-hop": "SAGE with a rebalance to p2, timings off",
}


def run_case(case: str, records: int) -> None:
    """Run one case once (inside valgrind)."""
    sys.path.insert(0, str(HERE))
    if case != "loop":  # imports and first-job set-up before the data exists, as in a long-lived program
        run_case_on(case, [1])
    run_case_on(case, list(range(records)))


def run_case_on(case: str, data: list[int]) -> None:
    """The case's work over ``data``."""
    import local_throughput
    import metrics_overhead

    if case == "loop":
        local_throughput.plain_loop(data)
    elif case == "sage":
        local_throughput.sage_pipeline(data, 1)
    else:
        metrics_overhead.run(data, timings="-on" in case, hop=case.endswith("-hop"))


def instructions(case: str, records: int) -> int:
    """Instructions valgrind counted for a fresh process running ``case`` over ``records``."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               __file__, "--case", case, "--records", str(records)]
    # A fixed hash seed: the same dict layouts in every run, so the counts repeat.
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count for {case}:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--case", choices=sorted(CASES), help="run one case once (used under valgrind)")
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.records)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    per_record = {}
    for case, label in CASES.items():
        per_record[case] = (instructions(case, args.records) - instructions(case, FEW)) / (args.records - FEW)
        print(f"{label:<48}{per_record[case]:>8,.0f} instructions/record")
    print(f"loop / sage (instructions)                      {per_record['loop'] / per_record['sage']:>8.3f}")
    for hop in ("", "-hop"):
        cost = per_record[f"timings-on{hop}"] / per_record[f"timings-off{hop}"] - 1
        print(f"timings cost{' with the rebalance' if hop else ' fused at p1':<36}{100 * cost:>7.1f}%  (target < 5%)")


if __name__ == "__main__":
    main()
