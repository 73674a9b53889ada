"""Streaming scoring against a careful hand-written script, measured side by side in one run.

For each row count and input format (Parquet, CSV) it generates a table of FEATURES numeric features, an id and
a 0/1 outcome (in chunks, so generating 10M rows fits in memory), and scores it with a model of about 250 trees
trained on a small sample, three ways, one after the other:

- raw: a standalone script, what a careful person writes by hand: Arrow's reader (``iter_batches`` /
  ``open_csv``), ``inplace_predict`` on a NumPy array, Arrow's CSV writer; no metrics, no checks;
- helper: ``ds_pipelines.examples.scoring.score_table`` in a plain Python process (the streaming loop alone,
  with its checks and metrics);
- run: ``ds-pipelines run inference_example`` on the same file (Dagster, dagstermill, the kernel, the
  notebook: the whole thing a user runs), plus the same run on 1,000 rows for its fixed start-up cost.

Each prints rows/s and the peak RSS of its process tree (the kernel is a child of ``ds-pipelines run``),
sampled every 50 ms, and the ratios to raw. All write CSV. The machine is shared and noisy: only ratios within
one run mean something.

    uv run python benchmarks/scoring.py                       # 1M and 10M rows, Parquet and CSV
    uv run python benchmarks/scoring.py --rows 200000 --formats parquet
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from ds_pipelines.execution.instance import INSTANCE_SETTINGS

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FEATURES = 30
TREES = 250
BATCH = 50_000
GENERATE_CHUNK = 250_000  # rows generated and written at a time (a Parquet row group each)

RAW_SCRIPT = """
import sys
import numpy as np, pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq, xgboost
model, source, target, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
booster = xgboost.Booster(model_file=model)
features = booster.feature_names
if source.endswith(".parquet"):
    batches = pq.ParquetFile(source).iter_batches(batch_size=batch_size, columns=["row_id", *features])
else:
    convert = pacsv.ConvertOptions(include_columns=["row_id", *features])
    batches = pacsv.open_csv(source, convert_options=convert)
schema = pa.schema([("id", pa.int64()), ("probability", pa.float32()), ("label", pa.int8())])
rows = 0
with pacsv.CSVWriter(target, schema) as writer:
    for batch in batches:
        matrix = np.column_stack([batch.column(name).to_numpy(zero_copy_only=False) for name in features])
        probability = booster.inplace_predict(matrix)
        label = (probability >= 0.5).astype(np.int8)
        writer.write_batch(pa.record_batch([batch.column("row_id"), pa.array(probability), pa.array(label)], schema=schema))
        rows += batch.num_rows
print(rows)
"""

HELPER_SCRIPT = """
import sys
from pathlib import Path
import xgboost
from ds_pipelines.examples.scoring import score_table
from ds_pipelines.project.schemas.inference import FieldMapping, OutputColumns
booster = xgboost.Booster(model_file=sys.argv[1])
summary = score_table(booster, Path(sys.argv[2]), Path(sys.argv[3]), batch_size=int(sys.argv[4]), threshold=0.5,
                      fields=FieldMapping(id_column="row_id", outcome_column="target"), columns=OutputColumns())
print(summary.rows)
"""


def feature_names() -> list[str]:
    return [f"f{i:02d}" for i in range(FEATURES)]


def table(rows: int, start: int, rng: np.random.Generator) -> pa.Table:
    values = rng.normal(size=(rows, FEATURES))
    signal = values[:, :8] @ np.linspace(1.0, 0.2, 8) + 0.5 * np.sin(3 * values[:, 8])
    outcome = (signal + rng.normal(size=rows) > 0).astype(np.int8)
    columns = {"row_id": pa.array(np.arange(start, start + rows))}
    columns.update({name: pa.array(values[:, i]) for i, name in enumerate(feature_names())})
    columns["target"] = pa.array(outcome)
    return pa.table(columns)


def train_model(folder: Path) -> Path:
    import xgboost

    sample = table(20_000, 0, np.random.default_rng(1))
    frame = sample.select(feature_names()).to_pandas()
    model = xgboost.XGBClassifier(n_estimators=TREES, max_depth=6, learning_rate=0.05)
    model.fit(frame, sample.column("target").to_numpy())
    target = folder / "model.json"
    model.save_model(target)
    return target


def generate(path: Path, rows: int) -> None:
    rng = np.random.default_rng(2)
    writer = None
    try:
        for start in range(0, rows, GENERATE_CHUNK):
            chunk = table(min(GENERATE_CHUNK, rows - start), start, rng)
            if writer is None:
                writer = pq.ParquetWriter(path, chunk.schema) if path.suffix == ".parquet" else pacsv.CSVWriter(path, chunk.schema)
            writer.write_table(chunk)
    finally:
        if writer is not None:
            writer.close()


def tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
        rss[int(entry.name)] = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    total, frontier = 0, [root_pid]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


@dataclass
class Measured:
    seconds: float
    peak_rss: int
    output: str


def measure(command: list[str], env: dict[str, str]) -> Measured:
    """Wall time and peak RSS of the process tree, sampled every 50 ms while ``command`` runs."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed ({process.returncode}):\n{stderr[-3000:]}")
    return Measured(seconds, peak, stdout)


def run_config(root: Path, model: Path, source: Path, target: Path) -> Path:
    config = {
        "model": {"path": str(model)},
        "input": {"path": str(source), "chunk_size": BATCH},
        "fields": {"id_column": "row_id", "outcome_column": "target"},
        "output": {"path": str(target), "metrics_path": str(target.with_suffix(".json"))},
    }
    path = root / f"inference-{source.stem}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_command(root: Path, config: Path) -> list[str]:
    return [str(BIN / "ds-pipelines"), "run", "inference_example", "--project-dir", str(REPO),
            "--config", f"inference_example={config}", "--output-dir", str(root / "results")]


def show(name: str, rows: int, measured: Measured, raw: Measured | None) -> None:
    ratio = f", throughput {raw.seconds / measured.seconds:.2f} of raw, peak RSS {measured.peak_rss / raw.peak_rss:.2f}x" if raw else ""
    print(f"  {name:<8} {measured.seconds:7.1f} s {rows / measured.seconds:>11,.0f} rows/s  peak RSS "
          f"{measured.peak_rss / 2**20:6.0f} MiB{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", choices=["parquet", "csv"], default=["parquet", "csv"])
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the generated files (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-scoring-", dir=args.scratch) as scratch:
        root = Path(scratch)
        env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        (root / "dagster").mkdir()
        (root / "dagster" / "dagster.yaml").write_text(INSTANCE_SETTINGS)
        model = train_model(root)
        print(f"{FEATURES} features, {TREES} trees (depth 6), batches of {BATCH:,} rows, {os.cpu_count()} CPUs", flush=True)
        for suffix in (f".{name}" for name in args.formats):
            tiny = root / f"tiny{suffix}"
            generate(tiny, 1_000)
            startup = measure(run_command(root, run_config(root, model, tiny, root / "tiny-scores.csv")), env)
            print(f"{suffix[1:]}: ds-pipelines run on 1,000 rows (its fixed cost): {startup.seconds:.1f} s, "
                  f"peak RSS {startup.peak_rss / 2**20:.0f} MiB", flush=True)
            for rows in args.rows:
                source = root / f"input-{rows}{suffix}"
                began = time.perf_counter()
                generate(source, rows)
                print(f"{suffix[1:]}, {rows:,} rows ({source.stat().st_size / 2**30:.2f} GiB, generated in "
                      f"{time.perf_counter() - began:.0f} s):", flush=True)
                scores = root / "scores.csv"
                raw = measure([sys.executable, "-c", RAW_SCRIPT, str(model), str(source), str(scores), str(BATCH)], env)
                assert int(raw.output) == rows
                show("raw", rows, raw, None)
                helper = measure([sys.executable, "-c", HELPER_SCRIPT, str(model), str(source), str(scores), str(BATCH)], env)
                assert int(helper.output) == rows
                show("helper", rows, helper, raw)
                run = measure(run_command(root, run_config(root, model, source, scores)), env)
                show("run", rows, run, raw)
                source.unlink()
                scores.unlink()


if __name__ == "__main__":
    main()
