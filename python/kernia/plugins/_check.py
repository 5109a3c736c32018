"""What every plugin builder shares: type checks here (a ``TypeError`` naming the
argument), value checks in the engine (``check_plugin``: the rules ``init()`` applies,
a ``ConfigurationError`` naming the option), so each rule is written once."""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from kernia._native import check_plugin


class Plugin(Protocol):
    id: str

    def options(self) -> dict[str, Any]: ...

    def callables(self) -> dict[str, Any]: ...


def options_key(plugin: Plugin) -> str:
    """Where ``init()`` hands the plugin's options to the engine."""
    return plugin.id.replace("-", "_")


def checked(plugin: Any) -> Any:
    """``plugin``, once the engine has accepted its options."""
    check_plugin(options_key(plugin), json.dumps(plugin.options()))
    return plugin


def function(plugin: str, name: str, value: Any, *, allow_false: bool = False) -> Any:
    if value is None or (allow_false and value is False) or callable(value):
        return value
    extra = ", False" if allow_false else ""
    raise TypeError(
        f"{plugin}(): {name} must be a function (sync or async){extra} or None, got {type(value).__name__}"
    )


def integer(plugin: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{plugin}(): {name} must be an int, got {type(value).__name__}")
    return value


def flag(plugin: str, name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise TypeError(f"{plugin}(): {name} must be True or False")
    return value


def seconds(plugin: str, name: str, value: Any) -> float | None:
    """A number of seconds (its sign is the engine's to check), or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{plugin}(): {name} must be a number of seconds, got {type(value).__name__}")
    return value


def whole_seconds(value: float | None) -> int | None:
    return None if value is None else math.ceil(value)
