"""Reading compose.yaml without Docker: interpolation, and which settings read which variable.

Used by deploy/devstack/tests/test_compose_file.py, which checks the file against the Compose
specification's JSON schema and against the code, so a configuration error shows in the test
suite rather than at deploy time.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

__all__ = ["InterpolationError", "interpolate", "load", "settings_read"]

# Compose's interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable is missing (what ``docker compose`` refuses to start with)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and empty:
            return arg
        if op in (":?", "?") and empty:
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def variables(path: Path) -> dict[str, set[str | None]]:
    """Each variable the file's values interpolate, with the operators it is used with
    (None: plain ``${VAR}``)."""
    found: dict[str, set[str | None]] = {}
    for value in _strings(yaml.safe_load(path.read_text())):
        for match in _VARIABLE.finditer(value):
            name = match["name"] or match["bare"]
            if name:
                found.setdefault(name, set()).add(match["op"])
    return found


def load(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The file as Compose reads it: YAML anchors and merge keys resolved, then every value
    interpolated (comments and keys are not, as in Compose)."""
    data = _interpolated(yaml.safe_load(path.read_text()), env)
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a mapping")
    return data


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, env) for value in node]
    return node


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def settings_read(settings: type[BaseSettings], variable: str) -> bool:
    """True when building ``settings`` from the environment reads ``variable``.

    Follows the rules of :mod:`shared.settings`: the service's prefix with ``__`` between
    nested fields (``GATEWAY_HTTP__PORT``), a shared block's own prefix (``KAFKA_ACKS``),
    and validation aliases (``PLATFORM_ENV``).
    """
    config = settings.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    name = variable.upper()
    for field_name, field in settings.model_fields.items():
        if name in _aliases(field):
            return True
        block = _settings_class(field.annotation)
        if block is not None and block is not settings:
            block_prefix = str(block.model_config.get("env_prefix", "")).upper()
            rest = name[len(block_prefix) :].split("__")
            if block_prefix and name.startswith(block_prefix) and _model_path(block, rest):
                return True
            # A block's field may be read under a name of its own (CacheSettings: REDIS_URL).
            if any(name in _aliases(f) for f in block.model_fields.values()):
                return True
        if name.startswith(prefix):
            path = name[len(prefix) :].split("__")
            if path[0] == field_name.upper() and _annotation_path(field.annotation, path[1:]):
                return True
    return False


def _aliases(field: FieldInfo) -> set[str]:
    """The environment names a field's ``validation_alias`` gives it (a name, or choices)."""
    alias = field.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return {c.upper() for c in choices if isinstance(c, str)}


def _settings_class(annotation: Any) -> type[BaseSettings] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
        return annotation
    return None


def _model_path(model: type[BaseModel], path: list[str]) -> bool:
    if not path or not path[0]:
        return False
    for field_name, field in model.model_fields.items():
        if field_name.upper() == path[0].upper():
            return _annotation_path(field.annotation, path[1:])
    return False


def _annotation_path(annotation: Any, path: list[str]) -> bool:
    if not path:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_annotation_path(arg, path) for arg in typing.get_args(annotation))
    if origin is dict:
        return len(path) == 1  # any key of a mapping
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_path(annotation, path)
    return False
