"""The README's Python snippets run as written: each in a fresh empty folder, in its own
process, offline, as an unprivileged user when the tests run as root.

A snippet line carrying `# prints: TEXT` must print TEXT (that is how a snippet shows its job
really ran). No STATEK_* variable of the caller's environment leaks in, so a snippet must
choose the offline provider itself, as a new user's copy would have to.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_PRINTS = re.compile(r"#\s*prints:\s*(.+?)\s*$", re.MULTILINE)
_TIMEOUT_S = 180  # a failure bound only: each snippet takes about a second


def _snippets() -> list[tuple[str, str]]:
    """(id, source) of every ```python block, the id naming the section it is in."""
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        headings = re.findall(r"^## (.+)$", text[: match.start()], re.MULTILINE)
        section = re.sub(r"\W+", "-", headings[-1].lower()).strip("-") if headings else "top"
        found.append((f"{len(found) + 1}-{section}", match.group(1)))
    return found


SNIPPETS = _snippets()


def _unprivileged() -> tuple[list[str], str]:
    """(command prefix that drops root to nobody, why not when it is empty)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        return [], "not running as root"
    if setpriv is None:
        return [], "setpriv is not installed"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return [], "there is no user 'nobody'"
    drop = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*drop, sys.executable, "-c", "import statek"],
                           capture_output=True, text=True, timeout=120, cwd="/")
    if probe.returncode != 0:  # e.g. an interpreter whose libpython sits under /root
        return [], f"this interpreter cannot run as nobody: {probe.stderr.strip()[-300:]}"
    return drop, ""


@pytest.fixture(scope="session")
def drop() -> list[str]:
    prefix, _ = _unprivileged()
    return prefix


@pytest.fixture(scope="session")
def nobody_can_respawn(drop: list[str]) -> bool:
    """Whether this interpreter, run as nobody, can start itself again: not when its real
    path runs through a folder only root may enter (a pyenv under /root): `setpriv` can still
    start it, a process of nobody cannot. Snippets that start a worker subprocess then run as
    the user running the tests."""
    if not drop:
        return True
    probe = subprocess.run(
        [*drop, sys.executable, "-c",
         "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"],
        capture_output=True, text=True, timeout=120, cwd="/")
    return probe.returncode == 0


@pytest.fixture
def empty_folder(drop: list[str]) -> Iterator[Path]:
    """A new empty folder the snippet's user owns (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="statek-readme-"))
    try:
        if drop:
            nobody = pwd.getpwnam("nobody")
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEK_")}
    env["STATEK_DATA_DIR"] = str(folder / "statek-data")  # the default ./statek-data, pinned
    env["HOME"] = str(folder)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_readme_has_the_snippets_it_documents() -> None:
    ids = [name for name, _ in SNIPPETS]
    assert len(ids) >= 4, ids
    for section in ("start-up", "running-a-worker", "the-job-language",
                    "feeding-a-running-worker"):
        assert any(name.endswith(section) for name in ids), (section, ids)


def test_readme_starts_with_the_two_entry_commands() -> None:
    """CI and a new user start from these two commands: they stay first, as written."""
    text = README.read_text(encoding="utf-8")
    first = text.index("```bash\n")
    assert first < text.index("```python\n")
    block = text[first: text.index("```\n", first + 8)]
    commands = [line for line in block.splitlines() if line and not line.startswith(("#", "`"))]
    assert commands == [
        'python3 -m venv .venv && .venv/bin/pip install -q -e ".[fast]" && .venv/bin/statek demo',
        "bash scripts/test.sh",
    ]


@pytest.mark.parametrize(("source",), [pytest.param(src, id=name) for name, src in SNIPPETS])
def test_readme_snippet_runs_as_written(source: str, empty_folder: Path,
                                        drop: list[str], nobody_can_respawn: bool) -> None:
    if "subprocess" in source and not nobody_can_respawn:
        drop = []
    assert "/var/" not in source and "/root" not in source, "snippets use folders a user owns"
    assert not re.search(r"""dbzero_root\s*=\s*["']/""", source), "no absolute store paths"
    script = empty_folder / "snippet.py"
    script.write_text(source, encoding="utf-8")
    out = subprocess.run(
        [*drop, sys.executable, str(script)], cwd=empty_folder, env=_environment(empty_folder),
        capture_output=True, text=True, timeout=_TIMEOUT_S,
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    for expected in _PRINTS.findall(source):
        assert expected in out.stdout, f"expected {expected!r} in:\n{out.stdout}\n{out.stderr}"
    stray = [p for p in empty_folder.iterdir() if p.name not in ("snippet.py",)]
    assert stray, "a snippet stores its state in the folder it runs in"


#: Snippets that feed a worker by agent role: run twice in one folder, they must reuse their
#: agent (a second one with the same role made the role ambiguous, and the snippet died with
#: its worker still running).
FEEDING = [pytest.param(src, id=name) for name, src in SNIPPETS
           if 'when_held="feed"' in src or "statek.connect(" in src]


@pytest.mark.parametrize(("source",), FEEDING)
def test_the_feeding_snippets_run_again_in_the_same_folder(source: str, empty_folder: Path,
                                                           drop: list[str],
                                                           nobody_can_respawn: bool) -> None:
    assert len(FEEDING) >= 3
    script = empty_folder / "snippet.py"
    script.write_text(source, encoding="utf-8")
    command = [*(drop if nobody_can_respawn else []), sys.executable, str(script)]
    expected = _PRINTS.findall(source)
    for _ in range(2):
        out = subprocess.run(command, cwd=empty_folder, env=_environment(empty_folder),
                             capture_output=True, text=True, timeout=_TIMEOUT_S)
        assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
        assert expected and all(text in out.stdout for text in expected), out.stdout


def test_snippets_run_unprivileged_when_root() -> None:
    """Running as root would hide a snippet that needs root: drop it when this machine can
    (otherwise the snippets still run, and the skip says why they ran as they did)."""
    prefix, why_not = _unprivileged()
    if not prefix:
        pytest.skip(f"snippets run as the current user: {why_not}")
    probe = subprocess.run([*prefix, "id", "-u"], capture_output=True, text=True, timeout=60,
                           check=True)
    assert probe.stdout.strip() not in ("", "0")
