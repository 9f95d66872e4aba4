"""Which modules a plan ships by value: the user's own, also beside a project's egg-info."""

from __future__ import annotations

import subprocess
import sys


def test_a_projects_egg_info_in_the_working_directory_does_not_make_its_modules_installed(tmp_path):
    """setuptools leaves ``NAME.egg-info`` beside an editable install, listing the project's
    source files; a worker has none of them, so they must still be shipped by value."""
    egg = tmp_path / "proj.egg-info"
    egg.mkdir()
    # the egg-info of a project that is also installed (an editable install leaves both)
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: sage-kernel\nVersion: 0\n")
    (egg / "SOURCES.txt").write_text("helpers/__init__.py\nhelpers/tools.py\n")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("")
    (tmp_path / "helpers" / "tools.py").write_text("def shout(text):\n    return text.upper()\n")
    code = ("import sys; sys.path.insert(0, ''); import helpers.tools;"
            "from sage.kernel.plan import shipping;"
            "print(sorted(m.__name__ for m in shipping.user_modules()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "'helpers.tools'" in out.stdout, out.stdout
