"""What the reproducibility record costs a notebook run, side by side in one run.

- ``gather``: the record of the reference training notebook with its config (notebook sha256, config hash,
  seeds, package versions, image, commit state with ``git``), against the same notebook's bare file read.
- Input hashing: ``dsp.read_table`` (which hashes the file for the record, on a thread, while it reads it) against pandas'
  ``read_csv`` alone, for a CSV of ``--rows`` rows: the ratio is what recording adds to reading an input.

The machine is shared and noisy: compare the ratios within one run.

    uv run python benchmarks/record_cost.py [--rows 2000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ds_pipelines.notebook.recorded import recorded_inputs
from ds_pipelines.notebook.tables import read_table
from ds_pipelines.results.reproducibility import commit_state, file_sha256, gather

REPO = Path(__file__).resolve().parent.parent


def best_of(repeat: int, action) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings) if repeat < 3 else statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    notebook = REPO / "notebooks/training_example.ipynb"
    config = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())
    record = best_of(args.repeat, lambda: gather(root=REPO, notebook=notebook, config=config,
                                                 commit=commit_state(REPO, "0" * 40, "main"), data=[], device="cpu"))
    read = best_of(args.repeat, notebook.read_bytes)
    print(f"record of the training notebook: {record * 1000:.1f} ms (bare file read {read * 1000:.2f} ms)")

    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "input.csv"
        rng = np.random.default_rng(0)
        pd.DataFrame(rng.random((args.rows, 8)), columns=[f"f{i}" for i in range(8)]).to_csv(csv, index=False)
        size_mb = csv.stat().st_size / 1e6
        hashing = best_of(args.repeat, lambda: file_sha256(csv))
        plain = best_of(args.repeat, lambda: pd.read_csv(csv))
        recorded = best_of(args.repeat, lambda: (read_table(csv, what="input"), recorded_inputs()))
    print(f"input CSV {size_mb:.0f} MB: sha256 alone {hashing:.2f} s ({size_mb / hashing:.0f} MB/s); "
          f"pd.read_csv {plain:.2f} s, dsp.read_table (read, hashed alongside) {recorded:.2f} s: x{recorded / plain:.2f}")


if __name__ == "__main__":
    main()
