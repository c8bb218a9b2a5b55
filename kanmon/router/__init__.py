"""kanmon.router: the match language, Go ``path.Match`` globs, route resolution and targets (SPEC §6.4, §7).

Pure: routes arrive as values, nothing here reads the store, the network or the clock. The gateway imports from
here; the router imports nothing from the gateway or the store.
"""

from __future__ import annotations

from kanmon.router.errors import GlobError, RouteError
from kanmon.router.glob import Glob, compile_glob, glob_match, is_valid_glob
from kanmon.router.impulse import ImpulseConfig, parse_impulse_config
from kanmon.router.match import MatchExpr, MessageFields, check_match, parse_match
from kanmon.router.routes import (
    MAX_SEQ,
    Route,
    RouteCheck,
    RouteDecision,
    RouteTrace,
    Verdict,
    check_route,
    check_seq,
    ordered,
    resolve,
    trace,
    validate_route,
)
from kanmon.router.targets import (
    Target,
    TargetKind,
    check_target_known,
    folder_targets,
    is_daemon_name,
    parse_target,
    sender_file_id,
)

__all__ = [
    "MAX_SEQ",
    "Glob",
    "GlobError",
    "ImpulseConfig",
    "MatchExpr",
    "MessageFields",
    "Route",
    "RouteCheck",
    "RouteDecision",
    "RouteError",
    "RouteTrace",
    "Target",
    "TargetKind",
    "Verdict",
    "check_match",
    "check_route",
    "check_seq",
    "check_target_known",
    "compile_glob",
    "folder_targets",
    "glob_match",
    "is_daemon_name",
    "is_valid_glob",
    "ordered",
    "parse_impulse_config",
    "parse_match",
    "parse_target",
    "resolve",
    "sender_file_id",
    "trace",
    "validate_route",
]
