"""Lifecycle hooks for trusted local Python code (issue 16 item 6): what a plugin imports, and what gated runs.

A plugin implements some of the hooks of :class:`~kanmon.gateway.hooks.specs.HookSpecs` with :data:`hookimpl`;
:class:`Hooks` loads plugins and calls them off the event loop with a timeout (:mod:`.manager`, :mod:`.calls`).
docs/hooks.md is the guide, docs/examples/audit_hooks.py an example.
"""

from kanmon.gateway.hooks.manager import (
    ENTRY_POINT_GROUP,
    HOOK_NAMES,
    NO_HOOKS,
    HookConfig,
    Hooks,
    PluginError,
    PluginInfo,
)
from kanmon.gateway.hooks.specs import Drop, HookSpecs, Retarget, RunExtras, hookimpl

__all__ = [
    "ENTRY_POINT_GROUP",
    "HOOK_NAMES",
    "NO_HOOKS",
    "Drop",
    "HookConfig",
    "HookSpecs",
    "Hooks",
    "PluginError",
    "PluginInfo",
    "Retarget",
    "RunExtras",
    "hookimpl",
]
