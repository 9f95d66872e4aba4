"""Savepoints: the state of a stopped job, written to a folder, and read back to resume it.

A savepoint is taken by ``handle.stop(savepoint=PATH)``: the sources stop, every record they
read passes every operator (windows and timers do not fire: they carry over), and then each
task's state is taken: each function's ``snapshot()`` (a source's position, a sink's pending
output), each keyed operator's per-key state and timers. The folder holds ``state.pkl``
(cloudpickle) and ``savepoint.json`` (what is in it), written to a temporary folder, synced
and renamed into place, so a savepoint is whole or absent.

On resume (``execute(resume_from=PATH)``) operators are matched by name: a new operator
starts empty; an operator the new pipeline lacks is an error unless its state may be dropped.
Keyed state and timers go to the instance that owns each key at the new parallelism (the
same stable hash ``key_by`` routes with); a function's own snapshot goes to the instance of
the same index, and the function's ``restore()`` says whether it accepts it; a source whose
instances share their input (``restores_every_instance``) gets every instance's snapshot, at
any parallelism.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
from sage.kernel.api.key_hash import stable_hash
from sage.kernel.errors import SageError
from sage.kernel.plan.physical import PhysicalPlan

STATE_FILE = "state.pkl"
META_FILE = "savepoint.json"
FORMAT = 1

# operator name -> instance index -> {"function": ..., "keyed": {key: state}, "timers": {...}}
OperatorStates = dict[str, dict[int, dict[str, Any]]]


class SavepointError(SageError):
    """A savepoint could not be written, read, or matched to the pipeline resuming from it."""


def write_savepoint(path: str | os.PathLike[str], job_name: str, plan: PhysicalPlan,
                    states: OperatorStates) -> Path:
    """Write ``states`` to the folder ``path`` (which must not exist), atomically."""
    target = Path(path).expanduser().resolve()
    if target.exists():
        raise SavepointError(f"savepoint {target}: the folder exists; give a new path for each savepoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        parallelism = {op.name: chain.parallelism for chain in plan.chains for op in chain.operators}
        meta = {"format": FORMAT, "job_name": job_name, "created": time.time(),
                "operators": {name: parallelism.get(name) for name in sorted(states)}}
        for name, data in ((STATE_FILE, cloudpickle.dumps(states)), (META_FILE, json.dumps(meta, indent=2).encode())):
            with open(staging / name, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        os.rename(staging, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


CHECKPOINT_PREFIX = "chk-"


def newest_state_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` when it is a savepoint or one checkpoint; the newest complete checkpoint in it
    when it is a job's checkpoint folder (``<checkpoint dir>/<job id>``)."""
    folder = Path(path).expanduser()
    if (folder / META_FILE).exists():
        return folder
    numbered = [(int(child.name[len(CHECKPOINT_PREFIX):]), child) for child in folder.glob(f"{CHECKPOINT_PREFIX}*")
                if child.name[len(CHECKPOINT_PREFIX):].isdigit() and (child / META_FILE).exists()]
    return max(numbered)[1] if numbered else folder


def read_savepoint(path: str | os.PathLike[str]) -> OperatorStates:
    """The operator states of the savepoint folder ``path`` (or of the newest checkpoint in a
    job's checkpoint folder)."""
    source = newest_state_folder(path)
    try:
        meta = json.loads((source / META_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise SavepointError(f"savepoint {source}: format {meta.get('format')!r}, this SAGE reads {FORMAT}")
        return cloudpickle.loads((source / STATE_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise SavepointError(f"savepoint {source} cannot be read ({type(exc).__name__}: {exc}); "
                             "give the folder handle.stop(savepoint=...) wrote") from exc


def states_for(plan: PhysicalPlan, saved: OperatorStates, allow_dropped_state: bool,
               where: str) -> dict[tuple[int, int], dict[str, dict[str, Any]]]:
    """What each task (chain id, instance) restores: per operator name, its function's
    snapshot and the keyed state and timers of the keys it owns at the plan's parallelism."""
    present = {op.name: (chain, op) for chain in plan.chains for op in chain.operators}
    dropped = sorted(name for name, instances in saved.items() if name not in present and _holds_state(instances))
    if dropped and not allow_dropped_state:
        raise SavepointError(
            f"{where}: the savepoint holds state of operator(s) {dropped} that this pipeline lacks; "
            "keep their names, or pass allow_dropped_state=True to drop their state")
    tasks: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for name, instances in saved.items():
        if name not in present:
            continue
        chain, op = present[name]
        per_instance = [tasks.setdefault((chain.id, i), {}).setdefault(name, {"keyed": {}, "timers": {}})
                        for i in range(chain.parallelism)]
        shared = getattr(op.function, "restores_every_instance", False)
        if shared and (every := [state["function"] for _, state in sorted(instances.items())
                                 if state.get("function") is not None]):
            for target in per_instance:
                target["function"] = every
        for index, state in sorted(instances.items()):
            if state.get("function") is not None and not shared:
                if index >= chain.parallelism:
                    raise SavepointError(
                        f"{where}: operator {name!r} saved its position in instance {index}, but it now "
                        f"runs {chain.parallelism} instance(s); resume it with the parallelism it had")
                per_instance[index]["function"] = state["function"]
            for key, value in state.get("keyed", {}).items():
                per_instance[stable_hash(key) % chain.parallelism]["keyed"][key] = value
            for domain, timers in state.get("timers", {}).items():
                for timestamp, key in timers:
                    owner = per_instance[stable_hash(key) % chain.parallelism]["timers"]
                    owner.setdefault(domain, []).append((timestamp, key))
    return tasks


def _holds_state(instances: dict[int, dict[str, Any]]) -> bool:
    return any(state.get("function") is not None or state.get("keyed") or state.get("timers")
               for state in instances.values())
