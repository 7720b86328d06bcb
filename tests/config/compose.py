"""docker-compose.yml as `docker compose` reads it, without Docker: YAML (anchors and merge keys), then variable
interpolation from an env file: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error},
and $$ for a literal $. As in Compose, every value of the file is interpolated, whichever profiles are active.
"""

import re
from pathlib import Path
from typing import Any

import yaml

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<plain>[A-Za-z_]\w*)"
)


class InterpolationError(ValueError):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(replace, text)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def load(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The compose file with anchors resolved and variables interpolated (raises InterpolationError)."""
    return _walk(yaml.safe_load(path.read_text()), env)
