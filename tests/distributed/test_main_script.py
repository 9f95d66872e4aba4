"""A user's script, run as ``python script.py``, ships its __main__ and local-module functions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

HELPERS = """
def shout(word):
    return word.upper() + "!"
"""

SCRIPT = """
import json
import sys

from helpers import shout
from sage.kernel.api import RemoteEnvironment


def longer_than_three(word):
    return len(word) > 3


if __name__ == "__main__":
    env = RemoteEnvironment("script", port=int(sys.argv[1]))
    (env.from_collection(["hi", "hello", "sage", "ray", "stream"])
        .filter(longer_than_three, parallelism=2)
        .map(shout)
        .collect())
    print(json.dumps(sorted(env.execute().collected())))
"""


def test_main_and_local_module_functions_run_remotely(cluster, tmp_path):
    (tmp_path / "helpers.py").write_text(textwrap.dedent(HELPERS))
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    run = subprocess.run([sys.executable, "script.py", str(cluster.jobmanager_port)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=180,
                         env={**os.environ, "SAGE_HOME": str(cluster.home)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == '["HELLO!", "SAGE!", "STREAM!"]'
    assert "[sage] submitted script-" in run.stderr
