"""Shell completion of names kept in the store: the group folders a FOLDER argument or ``--group`` option takes.

click calls a parameter's ``shell_complete`` at every <Tab> (``_GATED_COMPLETE=bash_complete``, click's docs:
"Shell Completion"), without running the ``gated`` group's callback, so the store is found here from the global
options on the command line. Completion must stay quiet and harmless: the store is opened only when it exists
(nothing is created or migrated), and a store that is missing, locked or of another schema offers nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from kanmon.gated.app import App

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["group_folders", "group_option"]


def group_folders(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The group folders starting with ``incomplete``, in name order, of the store ``--data-dir``/``--config`` name."""
    options = ctx.find_root().params
    app = App(data_dir=options.get("data_dir"), config_path=options.get("config_path"))
    try:
        folders = sorted(group.folder for group in app.open_store(create=False).list_groups())
    except Exception:  # any failure to read: completion offers nothing rather than print an error into the shell
        return []
    finally:
        app.close()
    return [CompletionItem(folder) for folder in folders if folder.startswith(incomplete)]


def group_option(summary: str, **settings: Any) -> Callable[[F], F]:
    """The ``--group FOLDER`` option of a command that narrows to, or names, existing groups (its value in ``folder``
    unless ``settings`` name another as ``dest``), described by ``summary`` and completed by :func:`group_folders`."""
    names = ("--group", settings.pop("dest", "folder"))
    return click.option(*names, metavar="FOLDER", shell_complete=group_folders, help=summary, **settings)
