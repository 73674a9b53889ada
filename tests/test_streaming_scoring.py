"""Streaming scoring (``ds_pipelines.examples.scoring``, the notebook API's batch reader and table writer):
the same scores as scoring the whole table at once, metrics accumulated batch by batch, memory that does not
grow with the row count, and bad input refused naming the file, the row or column and the config key, with
nothing half-written at the output path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import xgboost
from sklearn import metrics as skm

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.examples.scoring import ScoreSummary, score_table
from ds_pipelines.notebook.tables import read_batches, table_writer
from ds_pipelines.project.schemas.inference import FieldMapping, OutputColumns

ROWS = 400
FEATURES = [f"f{i}" for i in range(6)]


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    data["target"] = (data.sum(axis=1) + rng.normal(size=rows) > 0).astype(int)
    data.insert(0, "row_id", np.arange(rows) + 10_000)
    return data


@pytest.fixture(scope="module")
def model() -> xgboost.XGBClassifier:
    data = make_data(2000, seed=1)
    return xgboost.XGBClassifier(n_estimators=30, max_depth=4).fit(data[FEATURES], data["target"])


def write_input(data: pd.DataFrame, path: Path, row_group_size: int = 300) -> Path:
    if path.suffix == ".csv":
        data.to_csv(path, index=False)  # numbers as Python writes them: read back, they are the same floats
    else:
        pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path, row_group_size=row_group_size)
    return path


def write_large_input(data: pd.DataFrame, path: Path) -> Path:
    table = pa.Table.from_pandas(data, preserve_index=False)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)  # much faster than pandas for a large table
    else:
        pq.write_table(table, path, row_group_size=10_000)
    return path


def read_output(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def score(model, source: Path, target: Path, batch_size: int = 100, outcome: str | None = "target", **fields) -> ScoreSummary:
    return score_table(model.get_booster(), source, target, fields=FieldMapping(id_column="row_id", outcome_column=outcome, **fields),
                       columns=OutputColumns(), threshold=0.5, batch_size=batch_size)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("batch_size", [100, 37, 5000], ids=["divides", "does-not-divide", "larger-than-input"])
@pytest.mark.parametrize(("source", "target"), [("in.csv", "scores.csv"), ("in.parquet", "scores.parquet"),
                                                ("in.csv", "scores.parquet"), ("in.parquet", "scores.csv")])
def test_streamed_scores_equal_scoring_the_whole_table(tmp_path, model, source, target, batch_size):
    data = make_data(ROWS)
    batches = []
    summary = score_table(model.get_booster(), write_input(data, tmp_path / source), tmp_path / target,
                          fields=FieldMapping(id_column="row_id", outcome_column="target"), columns=OutputColumns(),
                          threshold=0.5, batch_size=batch_size, on_batch=lambda s: batches.append(s.rows))

    whole = model.predict_proba(data[FEATURES])[:, 1]
    scores = read_output(tmp_path / target)
    assert list(scores.columns) == ["id", "probability", "label"]
    assert scores["id"].astype(int).tolist() == data["row_id"].tolist()  # every row once, in input order
    np.testing.assert_array_equal(scores["probability"].to_numpy(np.float32), whole)
    assert (scores["label"] == (whole >= 0.5)).all()
    expected_batches = list(range(batch_size, ROWS, batch_size)) + [ROWS]
    assert batches == expected_batches  # whole batches of batch_size rows, the rest in the last
    assert summary.metrics()["row_count"] == ROWS
    assert leftovers(tmp_path) == []


def test_features_mapped_to_other_column_names_and_output_columns_renamed(tmp_path, model):
    data = make_data(ROWS).rename(columns={"f0": "first", "row_id": "patient"})
    source = write_input(data, tmp_path / "in.parquet")
    score_table(model.get_booster(), source, tmp_path / "out.csv",
                fields=FieldMapping(id_column="patient", features={"f0": "first"}),
                columns=OutputColumns(id="patient_id", probability="p", label="y"), threshold=0.3, batch_size=64)
    scores = pd.read_csv(tmp_path / "out.csv")
    whole = model.predict_proba(data.rename(columns={"first": "f0"})[FEATURES])[:, 1]
    assert list(scores.columns) == ["patient_id", "p", "y"]
    np.testing.assert_array_equal(scores["p"].to_numpy(np.float32), whole)
    assert (scores["y"] == (whole >= 0.3)).all()


def test_missing_values_score_as_xgboost_scores_them(tmp_path, model):
    data = make_data(200)
    data.loc[[3, 50, 199], "f2"] = np.nan
    for name in ("in.csv", "in.parquet"):
        score(model, write_input(data, tmp_path / name), tmp_path / "out.csv", batch_size=64)
        scores = pd.read_csv(tmp_path / "out.csv")
        np.testing.assert_array_equal(scores["probability"].to_numpy(np.float32), model.predict_proba(data[FEATURES])[:, 1])


# --- metrics -------------------------------------------------------------------------------------------------------

def summary_of(probability: np.ndarray, outcome: np.ndarray, batch: int, threshold: float = 0.5) -> ScoreSummary:
    summary = ScoreSummary(threshold, labelled=True)
    for start in range(0, len(probability), batch):
        summary.add(probability[start:start + batch], outcome[start:start + batch], rows_before=start)
    return summary


@pytest.mark.parametrize("spread", ["even", "crowded"])
def test_auc_stays_within_its_stated_bound_of_scikit_learns(spread):
    rng = np.random.default_rng(3)
    outcome = rng.integers(0, 2, 200_000).astype(float)
    if spread == "even":
        probability = np.clip(rng.normal(0.3 + 0.3 * outcome, 0.2), 0, 1).astype(np.float32)
    else:  # most scores within a few bins near 0, as a confident model gives them
        probability = np.clip(rng.exponential(3e-5 + 3e-5 * outcome), 0, 1).astype(np.float32)
    summary = summary_of(probability, outcome, batch=7_919)
    exact = skm.roc_auc_score(outcome, probability)
    bound = summary.auc_error_bound()
    assert abs(summary.roc_auc() - exact) <= bound + 1e-12
    if spread == "even":
        assert bound < 1e-4
    else:
        assert bound > 1e-3  # the bound says when the bins are too coarse for these scores


def test_confusion_metrics_and_distribution_equal_whole_table_metrics():
    rng = np.random.default_rng(4)
    outcome = rng.integers(0, 2, 50_001).astype(float)
    probability = rng.random(50_001).astype(np.float32)
    metrics = summary_of(probability, outcome, batch=4_096, threshold=0.4).metrics()
    predicted = (probability >= 0.4).astype(int)
    assert metrics["row_count"] == 50_001
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(outcome, predicted), abs=1e-12)
    assert metrics["precision"] == pytest.approx(skm.precision_score(outcome, predicted), abs=1e-12)
    assert metrics["recall"] == pytest.approx(skm.recall_score(outcome, predicted), abs=1e-12)
    assert metrics["f1"] == pytest.approx(skm.f1_score(outcome, predicted), abs=1e-12)
    assert metrics["mean_probability"] == pytest.approx(float(probability.astype(np.float64).mean()), rel=1e-12)
    assert metrics["positive_rate"] == pytest.approx(predicted.mean(), abs=1e-12)
    coarse = np.histogram(probability, bins=np.linspace(0, 1, 11))[0]
    assert [metrics[f"score_bin_{i / 10:.1f}_{(i + 1) / 10:.1f}"] for i in range(10)] == coarse.tolist()


def test_one_class_only_has_no_auc_and_zero_division_gives_zero():
    metrics = summary_of(np.array([0.1, 0.2, 0.3], np.float32), np.zeros(3), batch=2).metrics()
    assert "roc_auc" not in metrics
    assert (metrics["accuracy"], metrics["precision"], metrics["recall"], metrics["f1"]) == (1.0, 0.0, 0.0, 0.0)


def test_unlabelled_input_reports_the_distribution_only(tmp_path, model):
    summary = score(model, write_input(make_data(300), tmp_path / "in.csv"), tmp_path / "out.csv", outcome=None)
    assert set(summary.metrics()) == {"row_count", "mean_probability", "positive_rate",
                                      *(f"score_bin_{i / 10:.1f}_{(i + 1) / 10:.1f}" for i in range(10))}


# --- memory --------------------------------------------------------------------------------------------------------

PEAK_RSS_SCRIPT = """
import re, sys, pyarrow, xgboost
from pathlib import Path
# Arrow's allocator keeps freed memory for a second before it gives it back: how much that is depends on how
# long the run has lasted, not on its rows, and the smaller run ends before it levels off. Given back at once,
# both peaks count what the scoring holds.
pyarrow.jemalloc_set_decay_ms(0)
from ds_pipelines.examples.scoring import score_table
from ds_pipelines.project.schemas.inference import FieldMapping, OutputColumns
model = xgboost.XGBClassifier()
model.load_model(sys.argv[1])
summary = score_table(model.get_booster(), Path(sys.argv[2]), Path(sys.argv[3]),
                      fields=FieldMapping(id_column="row_id", outcome_column="target"), columns=OutputColumns(),
                      threshold=0.5, batch_size=10_000)
# VmHWM, the peak RSS of this process's own memory: ru_maxrss would also count the parent's, whose peak a
# child inherits on Linux when it is started.
peak_kib = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]
print(summary.rows, int(peak_kib) * 1024)
"""
MEMORY_MARGIN = 32 * 2**20
MEMORY_RUNS = 3


@pytest.mark.slow  # six processes, three of them score two million rows
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_peak_memory_does_not_grow_with_the_row_count(tmp_path, model, suffix):
    """Twenty times the rows (100,000 against 2,000,000: 458 MiB of features in memory, 250 MiB of CSV) raise
    the scoring process's peak RSS by less than MEMORY_MARGIN: what reads the whole table would not, nor what
    keeps every row's id, score and label (about 44 MiB more). How far Arrow's readers read ahead depends on
    how busy the machine is: one table's peak moved by up to 30 MiB from run to run, always upwards from what
    the scoring needs. So each table is scored MEMORY_RUNS times and the lowest peaks are compared: what grows
    with the rows raises every run's. Even the lowest CSV peaks once differed by 24.3 MiB on a busy CI machine,
    so the margin sits between that and the 44 MiB of per-row retention it must still catch."""
    model.save_model(tmp_path / "model.json")
    big = make_data(2_000_000, seed=5)
    peaks = {}
    for rows in (100_000, 2_000_000):
        source = write_large_input(big.head(rows), tmp_path / f"in{rows}{suffix}")
        runs = []
        for _ in range(MEMORY_RUNS):
            done = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(tmp_path / "model.json"), str(source),
                                   str(tmp_path / f"out{rows}{suffix}")], capture_output=True, text=True, check=True)
            scored, peak = map(int, done.stdout.split())
            assert scored == rows
            runs.append(peak)
        peaks[rows] = min(runs)
    assert peaks[2_000_000] - peaks[100_000] < MEMORY_MARGIN, {rows: f"{peak / 2**20:.0f} MiB" for rows, peak in peaks.items()}


# --- bad input -----------------------------------------------------------------------------------------------------

def test_text_in_a_numeric_csv_column_names_file_row_column_and_key(tmp_path, model):
    data = make_data(20_000).astype({"f3": object})
    data.loc[18_876, "f3"] = "abc"  # data row 18,877: Arrow reads the file in blocks of 1 MiB, this one is not the first
    source = write_input(data, tmp_path / "in.csv")
    (tmp_path / "scores.csv").write_text("an earlier result\n")
    written = []
    with pytest.raises(NotebookInputError) as raised:
        score_table(model.get_booster(), source, tmp_path / "scores.csv", fields=FieldMapping(id_column="row_id"),
                    columns=OutputColumns(), threshold=0.5, batch_size=1000, on_batch=lambda s: written.append(s.rows))
    assert str(raised.value) == (f"input data {source} (input.path): data row 18877, column 'f3' (from fields.features.f3): "
                                 "'abc' is not a number")
    assert written, "batches were scored and written before the bad row was reached"
    assert (tmp_path / "scores.csv").read_text() == "an earlier result\n"
    assert leftovers(tmp_path) == []


def test_text_in_the_outcome_column_names_its_key(tmp_path, model):
    data = make_data(50).astype({"target": object})
    data.loc[0, "target"] = "yes"
    source = write_input(data, tmp_path / "in.csv")
    with pytest.raises(NotebookInputError, match=r"data row 1, column 'target' \(from fields.outcome_column\): 'yes' is not a number"):
        score(model, source, tmp_path / "scores.csv")
    assert not (tmp_path / "scores.csv").exists() and leftovers(tmp_path) == []


def test_an_outcome_other_than_0_or_1_is_refused(tmp_path, model):
    data = make_data(500)
    data.loc[321, "target"] = 2
    source = write_input(data, tmp_path / "in.parquet")
    with pytest.raises(NotebookInputError) as raised:
        score(model, source, tmp_path / "scores.parquet")
    assert str(raised.value) == (f"input data {source} (input.path): data row 322, column 'target' (from fields.outcome_column): "
                                 "outcome 2.0; expected 0 or 1")
    assert not (tmp_path / "scores.parquet").exists() and leftovers(tmp_path) == []


def test_text_in_a_parquet_feature_column_is_refused_before_scoring(tmp_path, model):
    data = make_data(100).astype({"f1": str})
    source = write_input(data, tmp_path / "in.parquet")
    with pytest.raises(NotebookInputError) as raised:
        score(model, source, tmp_path / "scores.csv")
    assert str(raised.value) == (f"input data {source} (input.path): column 'f1' (from fields.features.f1) holds "
                                 "large_string values; expected numbers")
    assert not (tmp_path / "scores.csv").exists()


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_missing_feature_column_is_named_with_its_key(tmp_path, model, name):
    source = write_input(make_data(100).drop(columns=["f4"]).rename(columns={"f1": "first"}), tmp_path / name)
    with pytest.raises(NotebookInputError) as raised:
        score(model, source, tmp_path / "scores.csv", features={"f1": "f_one"})
    assert str(raised.value).startswith(
        f"input data {source} (input.path) is missing column(s) 'f_one' (from fields.features.f1), 'f4' (from fields.features.f4); it has: "
    )
    assert not (tmp_path / "scores.csv").exists()


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_an_empty_file_is_named(tmp_path, model, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(NotebookInputError) as raised:
        score(model, tmp_path / name, tmp_path / "scores.csv")
    assert str(raised.value) == f"input data {tmp_path / name} (input.path) is empty: expected a header row and rows to score"
    assert not (tmp_path / "scores.csv").exists()


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_table_without_rows_is_named(tmp_path, model, name):
    source = write_input(make_data(0), tmp_path / name)
    with pytest.raises(NotebookInputError) as raised:
        score(model, source, tmp_path / "scores.csv")
    assert str(raised.value) == f"input data {source} (input.path) has no rows to score"
    assert not (tmp_path / "scores.csv").exists()


def test_a_file_that_is_not_parquet_is_named(tmp_path, model):
    (tmp_path / "in.parquet").write_text("row_id,f0\n1,2\n")
    with pytest.raises(NotebookInputError, match=r"in.parquet \(input.path\) is not a readable Parquet file: "):
        score(model, tmp_path / "in.parquet", tmp_path / "scores.csv")


def test_a_csv_row_with_too_many_fields_is_named(tmp_path, model):
    source = tmp_path / "in.csv"
    source.write_text(make_data(5).to_csv(index=False) + "1,2,3,4,5,6,7,8,9,10\n")
    with pytest.raises(NotebookInputError) as raised:
        score(model, source, tmp_path / "scores.csv")
    assert str(raised.value).startswith(f"input data {source} (input.path): CSV parse error: Expected 8 columns, got 10")


def test_an_unknown_output_extension_is_refused_before_the_input_is_read(tmp_path, model):
    with pytest.raises(NotebookInputError) as raised:
        score(model, tmp_path / "absent.csv", tmp_path / "scores.txt")
    assert str(raised.value) == f"output.path: {tmp_path / 'scores.txt'} has extension '.txt'; expected one of .csv, .parquet"
    assert list(tmp_path.iterdir()) == []


def test_read_batches_yields_the_named_columns_in_batches_of_the_size_asked(tmp_path):
    source = write_input(make_data(250), tmp_path / "in.csv")
    batches = list(read_batches(source, columns={"id": "row_id", "x": "f1"}, numeric=["x"], batch_size=100, what="input.path"))
    assert [batch.num_rows for batch in batches] == [100, 100, 50]
    assert batches[0].schema.names == ["row_id", "f1"]
    assert (batches[0].schema.field("row_id").type, batches[0].schema.field("f1").type) == (pa.string(), pa.float64())


def test_table_writer_leaves_the_earlier_file_when_the_block_raises(tmp_path):
    target = tmp_path / "out.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), target)
    schema = pa.schema([("x", pa.int64())])
    with pytest.raises(RuntimeError), table_writer(target, schema, what="output.path") as writer:
        writer.write(pa.record_batch([pa.array([7, 8, 9])], schema=schema))
        raise RuntimeError("scoring failed half way")
    assert pq.read_table(target).column("x").to_pylist() == [1, 2]
    assert leftovers(tmp_path) == []
    with table_writer(target, schema, what="output.path") as writer:
        writer.write(pa.record_batch([pa.array([7, 8, 9])], schema=schema))
    assert pq.read_table(target).column("x").to_pylist() == [7, 8, 9]
    assert leftovers(tmp_path) == []
