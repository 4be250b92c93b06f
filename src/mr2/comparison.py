"""What a comparison consists of: ``OUT/comparison.json``, written by ``mr2 compare`` before
its runs train, read by the report. A report of a comparison folder contains exactly the runs
listed there; anything else under the folder (runs of methods a later ``--overwrite`` dropped,
copies put there by hand) is listed as not part of it, and a listed run without a result is
listed as missing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mr2.records.storage import load_json, save_json

MANIFEST = "comparison.json"


@dataclass(frozen=True)
class PlannedRun:
    method: str
    seed: int
    run_dir: str  # relative to the comparison folder


@dataclass(frozen=True)
class Manifest:
    methods: list[str]
    seeds: list[int]
    runs: list[PlannedRun]

    def run_dirs(self, folder: Path) -> set[Path]:
        return {(folder / r.run_dir).resolve() for r in self.runs}


def write_manifest(folder: Path, methods: list[str], seeds: list[int], runs: list[PlannedRun]):
    save_json(
        {"methods": list(methods), "seeds": list(seeds), "runs": [asdict(r) for r in runs]},
        Path(folder) / MANIFEST,
    )


def read_manifest(folder: Path) -> Manifest | None:
    """The comparison folder's manifest; None for a folder without one (a plain run, a
    folder of runs gathered by hand, or a comparison of an older mr2)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    data = load_json(path)
    try:
        runs = [
            PlannedRun(str(r["method"]), int(r["seed"]), str(r["run_dir"])) for r in data["runs"]
        ]
        return Manifest(list(data["methods"]), [int(s) for s in data["seeds"]], runs)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is not a comparison manifest ({err}); delete it") from err
