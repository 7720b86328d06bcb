"""The .dockerignore rules as tests/config/buildcontext.py applies them (Docker's semantics), and what the
project's own .dockerignore keeps: any new package, without editing the Dockerfile."""

import shutil
from pathlib import Path

import pytest

from tests.config.buildcontext import context_files, is_excluded, parse_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("planner/__pycache__/models.cpython-311.pyc", True),  # **/ matches at any depth
        ("__pycache__/x.pyc", True),  # ... including none
        ("runs/admin.pyo", True),  # [cod]
        ("runs/admin.py", False),
        ("build/lib/x.py", True),  # a matched folder takes its content
        ("planner/build/x.py", False),  # a plain pattern is anchored at the root
        ("docs/api.md", False),  # re-included by the later `!` line
        ("docs/operations.md", True),
        ("db.sqlite3-wal", True),  # * within a segment
        ("data/db.sqlite3", False),
    ],
)
def test_patterns_follow_dockers_rules(path, excluded):
    rules = parse_rules("# comment\n\n**/__pycache__\n**/*.py[cod]\n/build\ndocs\n!docs/api.md\ndb.sqlite3*\n")
    assert is_excluded(path, rules) is excluded


def test_the_last_matching_line_wins():
    assert is_excluded("a/b.txt", parse_rules("!a/b.txt\na\n"))
    assert not is_excluded("a/b.txt", parse_rules("a\n!a/b.txt\n"))


def test_new_packages_are_in_the_image_and_the_clutter_is_not(tmp_path):
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    for path in [
        "fits/__init__.py",
        "fits/migrations/0001_initial.py",
        "fits/templates/admin/fits/fit/plot.html",
        "apikit/throttling.py",
        "manage.py",
        "fits/__pycache__/models.cpython-311.pyc",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_x.py",
        "var/broker/m.msg",
        "staticfiles/admin/base.css",
        ".env",
        "db.sqlite3",
    ]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    assert context_files(tmp_path) == [
        "apikit/throttling.py",
        "fits/__init__.py",
        "fits/migrations/0001_initial.py",
        "fits/templates/admin/fits/fit/plot.html",
        "manage.py",
    ]
