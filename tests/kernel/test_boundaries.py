"""Package boundaries users and plugin authors rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_importing_the_api_and_running_locally_does_not_import_ray():
    modules = _modules_after(
        "from sage.kernel.api import LocalEnvironment;"
        "env = LocalEnvironment(); env.from_collection([1]).collect(); env.execute()"
    )
    assert "ray" not in modules


def test_remote_environment_needs_no_ray_on_the_client():
    modules = _modules_after(
        "from sage.kernel.api import RemoteEnvironment;"
        "env = RemoteEnvironment(config={'token': 't'}); env.from_collection([1]).map(str).collect();"
        "env.physical_plan()"
    )
    assert "ray" not in modules


def test_the_kernel_imports_no_other_sage_package():
    modules = _modules_after("import sage.kernel.api, sage.kernel.cli.main, sage.kernel.pipeline_file")
    others = {m for m in modules if m.startswith("sage.") and not m.startswith("sage.kernel")}
    assert others == set()


def test_sage_is_a_namespace_package_everywhere():
    assert not list(ROOT.glob("*/src/sage/__init__.py"))
    assert not list(ROOT.glob("plugins/*/src/sage/__init__.py"))
    import sage

    assert getattr(sage, "__file__", None) is None


def test_libs_and_middleware_use_only_the_kernel_api_and_hookspecs():
    allowed = ("sage.kernel.api", "sage.kernel.hookspecs")
    offenders = []
    for package in ("sage-libs", "sage-middleware", "plugins"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                words = line.split()
                imports_kernel = len(words) > 1 and words[0] in ("from", "import") and words[1].startswith("sage.kernel")
                if imports_kernel and not words[1].startswith(allowed):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
