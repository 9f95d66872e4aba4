"""Package boundaries users and plugin authors rely on."""

from __future__ import annotations

import ast
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


def test_the_kernel_imports_the_serving_stack_only_when_a_pipeline_is_served():
    modules = _modules_after(
        "import sage.kernel.serving, sage.kernel.cli.main; from sage.kernel.api import LocalEnvironment;"
        "from sage.kernel.serving import RequestSource, AnswerSink;"
        "env = LocalEnvironment(); env.from_source(RequestSource()).sink(AnswerSink()); env.physical_plan()"
    )
    assert not {"starlette", "uvicorn"} & modules


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


KERNEL = ROOT / "sage-kernel" / "src"


def _kernel_imports(module_level_only: bool = False) -> list[tuple[str, int, str, str]]:
    """(importing module, line, imported sage.kernel module, source line) for every import in
    the kernel's source, lazy ones inside functions included unless ``module_level_only``
    (imports for type checking only are left out: they never run)."""
    found = []
    for path in sorted((KERNEL / "sage" / "kernel").rglob("*.py")):
        parts = path.relative_to(KERNEL).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        source = path.read_text()
        tree = ast.parse(source)
        typing_only = {id(inner) for node in ast.walk(tree) if _is_type_checking_block(node)
                       for inner in ast.walk(node)}
        nodes = tree.body if module_level_only else ast.walk(tree)
        lines = source.splitlines()
        for node in nodes:
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("sage.kernel") and _is_module(target):
                    found.append((module, node.lineno, target, lines[node.lineno - 1].strip()))
                    # Importing a.b.c runs the package a.b's __init__ first: that is an import too.
                    parent = target.rpartition(".")[0]
                    while parent.startswith("sage.kernel.") and not _within(module, parent):
                        found.append((module, node.lineno, parent, lines[node.lineno - 1].strip()))
                        parent = parent.rpartition(".")[0]
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports for type hints only, never run."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _is_module(name: str) -> bool:
    path = KERNEL.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# (importer, what it may not import, why)
LAYER_RULES = [
    ("sage.kernel.api", "sage.kernel.runtime", "the API describes pipelines; runtimes run them"),
    ("sage.kernel.api", "sage.kernel.jobmanager", "the API talks to the service only through sage.kernel.client"),
    ("sage.kernel.api", "sage.kernel.cluster", "the API does not start or stop clusters"),
    ("sage.kernel.plan", "sage.kernel.runtime", "a plan is what runtimes execute, not the other way"),
    ("sage.kernel.plan", "sage.kernel.api", "the API builds plans; the plan stands below it (hints aside)"),
    ("sage.kernel.plan", "sage.kernel.jobmanager", "a plan knows nothing of the service"),
    ("sage.kernel.plan", "sage.kernel.cluster", "a plan knows nothing of clusters"),
    ("sage.kernel.cluster", "sage.kernel.jobmanager", "both stand on sage.kernel.client and sage.kernel.home"),
    ("sage.kernel.jobmanager", "sage.kernel.cluster", "both stand on sage.kernel.client and sage.kernel.home"),
    ("sage.kernel.runtime", "sage.kernel.jobmanager", "runtimes are driven by the service, never drive it"),
    ("sage.kernel.runtime", "sage.kernel.cluster", "runtimes connect through sage.kernel.home, not the cluster tools"),
    ("sage.kernel.client", "sage.kernel.runtime", "the client ships plans; it never runs them"),
    ("sage.kernel.client", "sage.kernel.jobmanager", "the client speaks the protocol, not the service's code"),
    ("sage.kernel.client", "sage.kernel.cluster", "the cluster tools use the client, not the other way"),
    ("sage.kernel.serving", "sage.kernel.runtime", "a served pipeline is a source and a sink, not a second engine"),
    ("sage.kernel.serving", "sage.kernel.jobmanager", "serving stands on the API, not the service's code"),
    ("sage.kernel.serving", "sage.kernel.cluster", "serving does not start or stop clusters"),
    ("sage.kernel.runtime", "sage.kernel.serving", "runtimes know nothing of HTTP; serving listens to record events"),
    ("sage.kernel.plan", "sage.kernel.serving", "a plan knows nothing of HTTP"),
]
BOTTOM = ("sage.kernel.home", ("sage.kernel.home", "sage.kernel.errors"))


def test_each_layer_imports_only_the_layers_below_it():
    offenders = []
    for importer, line, target, text in _kernel_imports():
        for package, forbidden, why in LAYER_RULES:
            if _within(importer, package) and _within(target, forbidden):
                offenders.append(f"{importer}:{line}: {text}  ({why})")
        if _within(importer, BOTTOM[0]) and not any(_within(target, ok) for ok in BOTTOM[1]):
            offenders.append(f"{importer}:{line}: {text}  (the SAGE home is the bottom layer)")
        if _within(target, "sage.kernel.cli") and not _within(importer, "sage.kernel.cli"):
            offenders.append(f"{importer}:{line}: {text}  (the CLI is the top layer)")
    assert offenders == []


def test_no_import_cycle_but_the_registry_loop():
    """At import time there is no cycle at all; counting lazy imports, only the registry's
    loop (the API looks up plugins, whose built-ins are API classes) may close one."""
    assert _cycles(module_level_only=True) == []
    for cycle in _cycles(module_level_only=False):
        assert {"sage.kernel.plugins", "sage.kernel.builtins"} <= cycle, sorted(cycle)


def _cycles(module_level_only: bool) -> list[set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, _, target, _ in _kernel_imports(module_level_only):
        if importer != target:
            graph.setdefault(importer, set()).add(target)
    return [component for component in _strongly_connected(graph) if len(component) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative enough for a graph of a few hundred modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return components
