"""The plugin manager of lifecycle hooks (issue 16 item 6): loading plugins, and calling them without stalling gated.

Plugins come from the entry points of installed packages (group ``kanmon.hooks``, with ``hooks.entry_points``) and
from the modules ``hooks.modules`` names. pluggy (the plugin manager pytest uses) keeps the registry and checks every
implementation against its spec (:mod:`kanmon.gateway.hooks.specs`); kanmon calls each implementation itself, on its
own thread with a timeout (:mod:`kanmon.gateway.hooks.calls`), so one that raises or hangs is skipped alone instead
of ending the call for all, as pluggy's own calling would.

A module named in the configuration that cannot be imported, or that implements a hook that does not exist or with
arguments its spec does not have, stops ``gated run`` with one line (:class:`PluginError`, exit 2): the operator asked
for it. An entry point that fails the same way is logged and left out, and ``gated hooks list`` says why: a package
installed for something else must not keep gated from starting.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from kanmon.errors import InvalidInput
from kanmon.gateway.hooks.calls import ImplCaller
from kanmon.gateway.hooks.specs import PROJECT, Drop, HookSpecs, Retarget, RunExtras
from kanmon.store import Group, Message

__all__ = ["ENTRY_POINT_GROUP", "HOOK_NAMES", "NO_HOOKS", "HookConfig", "Hooks", "PluginError", "PluginInfo"]

logger = logging.getLogger("kanmon.gateway.hooks")

ENTRY_POINT_GROUP = "kanmon.hooks"
#: Every hook kanmon calls, in the order the docs list them.
HOOK_NAMES: tuple[str, ...] = tuple(name for name in vars(HookSpecs) if not name.startswith("_"))


class PluginError(InvalidInput):
    """Raised when a hook plugin named in the configuration cannot be loaded; the message names it and why."""


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """Which plugins to load (``hooks.*``); the default loads none (tests, benchmarks, ``gated`` without ``run``)."""

    modules: tuple[str, ...] = ()
    entry_points: bool = False
    timeout: float = 2.0  # seconds a hook may take


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as ``gated hooks list`` shows it: its name, where it came from, the hooks it implements, and why it
    was left out (None when it is loaded)."""

    name: str
    source: str
    hooks: tuple[str, ...] = ()
    error: str | None = None


class Hooks:
    """The loaded plugins, and the calls into them (see the module docstring)."""

    def __init__(self, plugins: Iterable[tuple[str, object]] = (), *, timeout: float = 2.0) -> None:
        """Register ``plugins`` (name, module or object) given directly, as tests do; raises :class:`PluginError`."""
        self.timeout = timeout
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(HookSpecs)
        self._callers: dict[str, list[ImplCaller]] = {}
        self._lock = threading.Lock()  # callers are made on first use, from the loop or a store thread
        self.plugins: list[PluginInfo] = []
        #: told of every call's result, ``(plugin.hook, ok|error|late|dropped)``, from any thread (gated's metrics)
        self.count: Callable[[str, str], None] = lambda name, result: None
        for name, plugin in plugins:
            self.add(name, plugin, source="given")

    @classmethod
    def load(cls, config: HookConfig) -> Hooks:
        """The plugins of ``config``: its modules (a failure raises :class:`PluginError`), then the entry points."""
        hooks = cls(timeout=config.timeout)
        for module in config.modules:
            try:
                plugin = importlib.import_module(module)
            except Exception as exc:  # whatever importing a module may raise
                raise PluginError(f"hooks.modules: cannot import {module}: {type(exc).__name__}: {exc}") from None
            hooks.add(module, plugin, source="hooks.modules")
        if config.entry_points:
            for point in entry_points(group=ENTRY_POINT_GROUP):
                source = f"entry point of {point.dist.name if point.dist else 'an unknown package'}"
                try:
                    hooks.add(point.name, point.load(), source=source)
                except Exception as exc:  # a broken package: left out, said by `gated hooks list` and the log
                    logger.error("hook plugin %s (%s) left out: %s", point.name, source, exc)
                    hooks.plugins.append(PluginInfo(point.name, source, error=str(exc)))
        return hooks

    def add(self, name: str, plugin: object, *, source: str) -> None:
        """Register ``plugin`` as ``name``; raises :class:`PluginError` (nothing registered) for a name taken twice,
        an unknown hook or arguments its spec does not have."""
        try:
            self._pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"hook plugin {name}: {' '.join(str(exc).split())}") from None  # pluggy's is 3 lines
        callers = self._pm.get_hookcallers(plugin) or []
        unknown = sorted(caller.name for caller in callers if caller.spec is None)
        if unknown:
            self._pm.unregister(plugin)
            raise PluginError(
                f"hook plugin {name}: no such hook: {', '.join(unknown)} (hooks: {', '.join(HOOK_NAMES)})"
            )
        self.plugins.append(PluginInfo(name, source, tuple(sorted(caller.name for caller in callers))))
        self._callers.clear()

    # ------------------------------------------------------------------------------------------------ calling
    def observed(self, hook: str) -> bool:
        """Whether a plugin implements ``hook`` (whoever makes the event may then hurry to tell it)."""
        return bool(self._of(hook))

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Tell the observers of ``hook`` (in the background; returns at once, from any thread)."""
        for caller in self._of(hook):
            caller.post(kwargs)

    def route(
        self, message: Message, folder: str, topic: str, *, known: Callable[[str], bool]
    ) -> Drop | Retarget | None:
        """``message_routed``: :class:`Drop`, the new target (:class:`Retarget`, ``known`` folders only), or None to
        go on as decided. Blocks up to the timeout per plugin: call it on a thread, never the event loop."""
        target = (folder, topic)
        for caller in self._of("message_routed"):
            answer = caller.call({"message": message, "folder": target[0], "topic": target[1]})
            if isinstance(answer, Drop):
                logger.info("hook %s dropped seq=%d chat=%s", caller.name, message.seq, message.chat_jid)
                return answer
            if isinstance(answer, Retarget) and known(answer.folder):
                target = (answer.folder, target[1] if answer.topic is None else answer.topic)
            elif answer is not None:
                logger.error(
                    "hook %s answered %r: not Drop, a Retarget to a registered group or None", caller.name, answer
                )
        return Retarget(*target) if target != (folder, topic) else None

    async def run_starting(self, run_id: str, group: Group, runtime: str) -> RunExtras:
        """``run_starting``: every plugin's extras, merged (a later plugin's variable wins); waits up to the timeout
        per plugin without blocking the event loop."""
        env: dict[str, str] = {}
        notes: list[str] = []
        for caller in self._of("run_starting"):
            answer = await caller.acall({"run_id": run_id, "group": group, "runtime": runtime})
            if isinstance(answer, RunExtras) and _strings([*answer.env, *answer.env.values(), *answer.notes]):
                env.update(answer.env)
                notes.extend(answer.notes)
            elif answer is not None:
                logger.error("hook %s answered %r: not RunExtras of strings or None", caller.name, answer)
        return RunExtras(env=env, notes=notes)

    def close(self) -> None:
        """Let every plugin thread end once its queued events are done."""
        for callers in self._callers.values():
            for caller in callers:
                caller.close()
        self._callers.clear()

    def _of(self, hook: str) -> Sequence[ImplCaller]:
        callers = self._callers.get(hook)
        if callers is None:
            with self._lock:
                callers = self._callers.get(hook)
                if callers is None:
                    impls = getattr(self._pm.hook, hook).get_hookimpls()
                    # pluggy's own order: the last registered first (tryfirst/trylast respected)
                    count = lambda name, result: self.count(name, result)  # noqa: E731 - set after the callers
                    callers = [ImplCaller(impl, hook, self.timeout, count) for impl in reversed(impls)]
                    self._callers[hook] = callers
        return callers


def _strings(values: Iterable[object]) -> bool:
    return all(isinstance(value, str) for value in values)


#: No plugins: what components get unless gated gives them its own.
NO_HOOKS = Hooks()
