"""Input folders that give a file source nothing to read: empty, hidden-only, unreadable.

Each is a clear error naming the path when the source is built, never a job that finishes
with 0 records and no word. An unreadable folder is made with ``chmod 000``; root reads
through that (its CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH capabilities), so as root the
source is built in a child process that first drops those two capabilities, which holds it
to file permissions like any other user: the fault is real either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sage.libs.io import FileSource

CANNOT_DROP = 77
WITHOUT_ROOT_POWERS = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            sys.exit(77)
    # The bounding set limits what a program gets when it starts: start Python again.
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
""")


def build_in_child(source: str) -> str:
    """Build ``source`` (an expression) in a child process held to file permissions; return
    the error it raised as ``Type: message``, or ``built``."""
    code = textwrap.dedent(f"""
        from sage.libs.io import ChunkedFileSource, FileSource
        try:
            {source}
        except Exception as exc:
            print(f"{{type(exc).__name__}}: {{exc}}")
        else:
            print("built")
    """)
    args = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        args = [sys.executable, "-c", WITHOUT_ROOT_POWERS, code]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode == CANNOT_DROP:
        pytest.skip("running as root without CAP_SETPCAP: cannot make a folder unreadable")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def tree_with_a_locked_folder(tmp_path):
    """``data/`` with a readable document and ``data/locked/`` (chmod 000) holding another."""
    data = tmp_path / "data"
    (data / "open").mkdir(parents=True)
    (data / "open" / "a.txt").write_text("readable\n", encoding="utf-8")
    locked = data / "locked"
    locked.mkdir()
    (locked / "b.txt").write_text("hidden by permissions\n", encoding="utf-8")
    locked.chmod(0)
    yield data, locked
    locked.chmod(0o755)


def test_an_empty_directory_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(FileNotFoundError, match=rf"FileSource.*no files to read under {empty}"):
        FileSource(empty)


def test_a_directory_of_hidden_files_only_is_an_error_saying_they_are_skipped(tmp_path):
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / ".env").write_text("KEY=1\n", encoding="utf-8")

    with pytest.raises(FileNotFoundError, match=r"no files to read .*name starts with '\.'"):
        FileSource(tmp_path)


def test_a_glob_matching_only_folders_is_an_error(tmp_path):
    (tmp_path / "run-1").mkdir()

    with pytest.raises(FileNotFoundError, match="no files to read"):
        FileSource(tmp_path / "run-*")


@pytest.mark.parametrize("source", ["FileSource", "ChunkedFileSource"])
def test_an_unreadable_sub_folder_is_an_error_naming_it(tree_with_a_locked_folder, source):
    data, locked = tree_with_a_locked_folder

    outcome = build_in_child(f"{source}({str(data)!r})")

    assert outcome.startswith("PermissionError: "), outcome
    assert f"cannot list the folder {locked} (Permission denied)" in outcome


def test_a_glob_reaching_into_an_unreadable_folder_is_an_error(tree_with_a_locked_folder):
    data, locked = tree_with_a_locked_folder

    outcome = build_in_child(f"FileSource({str(data / '**' / '*.txt')!r})")

    assert f"PermissionError: FileSource({str(data / '**' / '*.txt')!r}): cannot list the " \
           f"folder {locked}" in outcome


def test_the_readable_part_of_the_tree_still_builds(tree_with_a_locked_folder):
    data, _ = tree_with_a_locked_folder

    assert build_in_child(f"FileSource({str(data / 'open')!r})") == "built"
    assert build_in_child(f"ChunkedFileSource({str(data / 'open')!r})") == "built"


def test_the_child_process_is_really_held_to_file_permissions(tree_with_a_locked_folder):
    """Guards the tests above: the locked folder cannot be listed where they build."""
    _, locked = tree_with_a_locked_folder

    outcome = build_in_child(f"__import__('os').listdir({str(locked)!r})")

    assert outcome.startswith("PermissionError"), outcome


def test_a_readable_tree_lists_the_same_files_as_before(tmp_path):
    for name in ["b.txt", "a/z.txt", "a/b/c.txt", ".hidden/x.txt", "a/.dot.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n", encoding="utf-8")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "b")

    listed = [Path(split.path).relative_to(tmp_path).as_posix()
              for split in FileSource(tmp_path).splits()]

    assert listed == ["a/b/c.txt", "a/z.txt", "b.txt"]
