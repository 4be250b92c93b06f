"""The commit stamped on benchmark results says when the measured files differ from it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import environment  # noqa: E402


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_commit_is_marked_dirty_when_the_files_differ(tmp_path, monkeypatch):
    monkeypatch.delenv("MR2_COMMIT", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    repo.mkdir()
    plain.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "--short=7", "HEAD")
    monkeypatch.setattr(environment, "ROOT", repo)
    assert environment.commit() == head
    (repo / "a.txt").write_text("two\n")  # a copied tree beside an older .git
    assert environment.commit() == head + "-dirty"
    monkeypatch.setenv("MR2_COMMIT", "abc1234")  # said by whoever copied the tree
    assert environment.commit() == "abc1234"
    monkeypatch.delenv("MR2_COMMIT")
    monkeypatch.setattr(environment, "ROOT", plain)  # no .git at all
    assert environment.commit() == "unknown"
