"""The plugin registry: one pluggy manager, built lazily from the ``sage`` entry points.

The kernel's own runtimes, partitioners and reporters are registered first, through the same
hooks as everyone else's. ``SAGE_PLUGINS`` (comma-separated entry-point or distribution
names) limits which third-party plugins load; an empty value loads none. A plugin that fails
to import is reported with its distribution and skipped.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
from typing import Any

import attrs
import pluggy
import structlog
from sage.kernel import __version__, hookspecs
from sage.kernel.errors import PluginNotFoundError, RuntimeUnavailableError

ENTRY_POINT_GROUP = "sage"
KINDS = {
    "source": "sage_sources",
    "operator": "sage_operators",
    "sink": "sage_sinks",
    "partitioner": "sage_partitioners",
    "runtime": "sage_runtimes",
    "metrics_reporter": "sage_metrics_reporters",
}
log = structlog.get_logger("sage.plugins")


@attrs.frozen
class PluginEntry:
    """One named thing a plugin provides."""

    name: str
    kind: str
    distribution: str
    version: str
    plugin: str
    obj: Any = attrs.field(eq=False, repr=False)

    @property
    def unavailable(self) -> str | None:
        """Why this cannot be used here (a runtime whose package is not installed), or None."""
        check = getattr(self.obj, "unavailable", None)
        return check(self.name) if callable(check) else None


@attrs.frozen
class PluginFailure:
    """A plugin whose entry point could not be loaded."""

    plugin: str
    distribution: str
    version: str
    error: str


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@attrs.frozen
class RuntimeSpec:
    """A runtime by import path, so that naming it does not import it (nor Ray).

    ``requires``: top-level modules the runtime imports; ``install``: the pip requirement that
    brings them (``sage-kernel[ray]``), named in the error when they are missing."""

    path: str
    ships_functions: bool = False
    description: str = ""
    requires: tuple[str, ...] = ()
    install: str = ""

    def unavailable(self, name: str) -> str | None:
        """Why runtime ``name`` cannot run here (its packages are missing), or None."""
        missing = [module for module in self.requires if not _importable(module)]
        if not missing:
            return None
        return (f"runtime {name!r} needs {', '.join(missing)}, which is not installed here; "
                f"install it with: pip install '{self.install}'")

    def check(self, name: str) -> None:
        """Raise RuntimeUnavailableError when runtime ``name`` cannot run here."""
        reason = self.unavailable(name)
        if reason is not None:
            raise RuntimeUnavailableError(reason)

    def load(self) -> type:
        module, _, attr = self.path.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.partition(".")[0] not in self.requires:
                raise
            raise RuntimeUnavailableError(
                f"{self.path} needs {exc.name}, which is not installed here; install it with: "
                f"pip install '{self.install}'") from None


class Registry:
    """The loaded plugins and what they provide."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("sage")
        self.manager.add_hookspecs(hookspecs)
        self.distributions: dict[str, tuple[str, str]] = {}
        self.failures: list[PluginFailure] = []
        from sage.kernel import builtins

        self._register(builtins, "sage-kernel", "sage-kernel", __version__)
        self._load_entry_points()
        self.manager.check_pending()

    def _register(self, module: Any, name: str, dist: str, version: str) -> None:
        self.manager.register(module, name=name)
        self.distributions[name] = (dist, version)

    def _load_entry_points(self) -> None:
        allowed = os.environ.get("SAGE_PLUGINS")
        allow = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            if allow is not None and ep.name not in allow and dist not in allow:
                continue
            if self.manager.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
                self._register(module, ep.name, dist, version)
            except Exception as exc:
                failure = PluginFailure(ep.name, dist, version, f"{type(exc).__name__}: {exc}")
                self.failures.append(failure)
                log.warning("plugin failed to load; continuing without it",
                            plugin=ep.name, distribution=f"{dist} {version}", error=failure.error)

    def entries(self) -> list[PluginEntry]:
        found: list[PluginEntry] = []
        seen: set[tuple[str, str]] = set()
        for kind, hook_name in KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                dist, version = self.distributions.get(impl.plugin_name, ("unknown", "?"))
                try:
                    provided = impl.function() or {}
                except Exception as exc:
                    log.warning("plugin hook failed", plugin=impl.plugin_name, hook=hook_name, error=str(exc))
                    continue
                for name, obj in provided.items():
                    if (kind, name) in seen:
                        log.warning("duplicate plugin name ignored", kind=kind, name=name, plugin=impl.plugin_name)
                        continue
                    seen.add((kind, name))
                    found.append(PluginEntry(name, kind, dist, version, impl.plugin_name, obj))
        return found

    def lookup(self, kind: str, name: str) -> Any:
        for entry in self.entries():
            if entry.kind == kind and entry.name == name:
                return entry.obj
        known = sorted(e.name for e in self.entries() if e.kind == kind)
        raise PluginNotFoundError(
            f"no {kind} named {name!r} is registered; known: {', '.join(known) or 'none'}"
            " (see `sage plugins list`; is the package that provides it installed?)"
        )


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return Registry()


def get_plugins() -> list[PluginEntry]:
    """Everything every loaded plugin provides, kernel built-ins first."""
    return get_registry().entries()


def lookup(kind: str, name: str) -> Any:
    """The object registered as ``name`` for ``kind`` (source, operator, sink, ...)."""
    return get_registry().lookup(kind, name)


def reset() -> None:
    """Forget the loaded registry (tests that change installed plugins or SAGE_PLUGINS)."""
    get_registry.cache_clear()
