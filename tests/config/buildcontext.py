"""What `docker build .` would send and copy: the tree filtered by .dockerignore, without a container engine.

The matching follows Docker's rules for .dockerignore: each line is a pattern on the slash-separated path from
the context root (a leading `/` is dropped); `*` matches any run of characters except `/`, `?` one character
except `/`, `[...]` a character class, `**` any number of whole path segments (none included); a pattern that
matches a folder excludes everything below it; a line starting with `!` re-includes what it matches; the last
matching line decides. Blank lines and `#` comments are ignored.
"""

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    include: bool  # a `!` line


def _translate(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]"
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def read_rules(dockerignore: Path) -> list[Rule]:
    return parse_rules(dockerignore.read_text())


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line[1:].strip() if include else line).lstrip("/")
        rules.append(Rule(_translate(pattern), include))
    return rules


def is_excluded(path: str, rules: list[Rule]) -> bool:
    """`path` is relative and slash-separated; it is excluded if the last rule matching it or one of its
    parent folders is an exclusion."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        if any(rule.regex.match(candidate) for candidate in candidates):
            excluded = not rule.include
    return excluded


def context_files(root: Path, extra_rules: list[Rule] | None = None) -> list[str]:
    """Every file under root that the build context keeps, as sorted relative paths."""
    rules = read_rules(root / ".dockerignore") + (extra_rules or [])
    can_reinclude = any(rule.include for rule in rules)
    kept = []
    for folder, subfolders, files in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        if not can_reinclude:  # nothing below an excluded folder can come back: skip walking it
            subfolders[:] = [name for name in subfolders if not is_excluded(prefix + name, rules)]
        kept += [prefix + name for name in files if not is_excluded(prefix + name, rules)]
    return sorted(kept)


def assemble(
    root: Path, destination: Path, paths: list[str] | None = None, extra_rules: list[Rule] | None = None
) -> list[str]:
    """Copy the context's files (or only `paths` of them, as a COPY of single files does) into destination."""
    files = context_files(root, extra_rules)
    chosen = files if paths is None else [path for path in files if path in paths]
    for path in chosen:
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, target)
    return chosen


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    steps = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps
