"""Which runs under a comparison folder belong to it (``mr2.comparison``'s manifest): the
report pools those only, lists the others as not part of the comparison, and lists a planned
run that has no result as missing."""

from __future__ import annotations

from pathlib import Path

from mr2.comparison import read_manifest
from mr2.report.summary import MissingRun


def result_files(folder: Path) -> list[Path]:
    """Every result.json under ``folder`` but tuning (grid) and JTT stage-1 runs."""
    return sorted(
        f
        for f in folder.rglob("result.json")
        if "grid" not in f.relative_to(folder).parts and "stage1" not in f.relative_to(folder).parts
    )


def members(folder: Path, files: list[Path]) -> list[Path]:
    """``files`` (of runs under ``folder``) that belong to its comparison; all of them when
    the folder has no manifest."""
    manifest = read_manifest(folder)
    if manifest is None:
        return files
    planned = manifest.run_dirs(folder)
    return [f for f in files if f.parent.resolve() in planned]


def outsiders(paths: list[str | Path]) -> list[str]:
    """Run folders with a result under comparison folders that are not part of them."""
    found = []
    for p in map(Path, paths):
        if p.is_dir() and read_manifest(p) is not None:
            files = result_files(p)
            inside = set(members(p, files))
            found += [str(f.parent) for f in files if f not in inside]
    return found


def unfinished(paths: list[str | Path], recorded: set[str]) -> list[MissingRun]:
    """Planned runs of the comparisons under ``paths`` with neither a result nor a failure
    record (``recorded``: run folders already listed as failed)."""
    found = []
    for p in map(Path, paths):
        manifest = read_manifest(p) if p.is_dir() else None
        for r in manifest.runs if manifest else []:
            run_dir = p / r.run_dir
            if not (run_dir / "result.json").is_file() and str(run_dir) not in recorded:
                found.append(
                    MissingRun(
                        f"{r.method} seed {r.seed}",
                        r.method,
                        r.seed,
                        str(run_dir),
                        "no result: not finished (interrupted, or its worker died)",
                    )
                )
    return found
