"""Scoring a table with an XGBoost model as a stream of batches, for ``notebooks/inference_example.ipynb``:
memory depends on the batch size, not on the input's row count.

``from ds_pipelines.examples import scoring``
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.notebook.tables import check_table_path, read_batches, table_writer
from ds_pipelines.project.schemas.inference import FieldMapping, OutputColumns


def score_table(booster, source: Path, target: Path, *, fields: FieldMapping, columns: OutputColumns,
                threshold: float, batch_size: int,
                on_batch: Callable[[ScoreSummary], None] | None = None) -> ScoreSummary:
    """Score ``source`` (CSV or Parquet) batch by batch into ``target`` (CSV or Parquet by its extension).

    Each batch is predicted with ``booster.inplace_predict`` on a NumPy array of the model's features (mapped
    through ``fields.features``), written as soon as it is scored (one row per input row: id, probability,
    label, named by ``columns``) and added to the returned ScoreSummary; ``on_batch`` sees the summary after
    each batch. ``target`` is replaced only when every row is scored: a failure leaves no file there.
    Errors name the input file and the config keys of the inference schema (``input.path``, ``fields.*``).
    """
    check_table_path(target, what="output.path")  # an unknown extension fails before any row is read
    if not booster.feature_names:
        raise NotebookInputError("the model has no feature names: train it on a table with named columns")
    features = list(booster.feature_names)
    wanted = {f"fields.features.{feature}": fields.features.get(feature, feature) for feature in features}
    wanted["fields.id_column"] = fields.id_column
    if fields.outcome_column:
        wanted["fields.outcome_column"] = fields.outcome_column
    numeric = [key for key in wanted if key != "fields.id_column"]
    batches = read_batches(source, columns=wanted, numeric=numeric, batch_size=batch_size, what="input.path")
    first = next(batches, None)
    if first is None:
        raise NotebookInputError(f"input data {source} (input.path) has no rows to score")
    schema = pa.schema([(columns.id, first.schema.field(fields.id_column).type), (columns.probability, pa.float32()),
                        (columns.label, pa.int8())])
    summary = ScoreSummary(threshold, labelled=fields.outcome_column is not None)
    feature_columns = [wanted[f"fields.features.{feature}"] for feature in features]
    matrix = np.empty((0, len(features)))
    with table_writer(target, schema, what="output.path") as writer:
        for batch in itertools.chain([first], batches):
            if matrix.shape[0] != batch.num_rows:  # one buffer for every batch of the same size
                matrix = np.empty((batch.num_rows, len(features)))
            for position, column in enumerate(feature_columns):
                matrix[:, position] = batch.column(column).to_numpy(zero_copy_only=False)
            probability = booster.inplace_predict(matrix)
            label = (probability >= threshold).astype(np.int8)
            outcome = batch.column(fields.outcome_column).to_numpy(zero_copy_only=False) if fields.outcome_column else None
            summary.add(probability, outcome, rows_before=writer.rows, source=f"input data {source} (input.path)",
                        outcome_column=fields.outcome_column)
            writer.write(pa.RecordBatch.from_arrays([batch.column(fields.id_column), pa.array(probability), pa.array(label)],
                                                    schema=schema))
            if on_batch is not None:
                on_batch(summary)
    return summary


class ScoreSummary:
    """Score statistics and, for labelled rows, AUC and confusion counts, accumulated batch by batch in a
    fixed amount of memory.

    Accuracy, precision, recall and F1 come from exact confusion counts at the threshold. ROC AUC comes from
    histograms of the scores of each class in BINS equal bins over [0, 1]: a positive and a negative whose
    scores share a bin count as a tie (½), so the AUC differs from the exact one (scikit-learn's
    ``roc_auc_score``) by at most half the share of positive-negative pairs that share a bin,
    ``auc_error_bound()``: about 1/(2·BINS) when scores spread evenly over [0, 1], more when many scores crowd
    into bins of width 1/BINS.
    """

    BINS = 100_000  # a multiple of 10: the ten score_bin_* counts are sums of whole bins
    COARSE = 10

    def __init__(self, threshold: float, *, labelled: bool = False):
        self.threshold = threshold
        self.labelled = labelled
        self.rows = 0
        self.total = 0.0
        self.predicted_positive = 0
        self.histogram = np.zeros(self.BINS, dtype=np.int64)
        self.positive_histogram = np.zeros(self.BINS, dtype=np.int64)  # rows whose outcome is 1
        self.true_positive = self.actual_positive = 0

    def add(self, probability: np.ndarray, outcome: np.ndarray | None = None, *, rows_before: int = 0,
            source: str = "input data", outcome_column: str | None = None) -> None:
        """One batch's scores and, when labelled, its outcomes (0 or 1; anything else is refused, naming the
        row counted from ``rows_before``)."""
        predicted = probability >= self.threshold
        bins = np.minimum((probability.astype(np.float64) * self.BINS).astype(np.int64), self.BINS - 1)
        self.rows += len(probability)
        self.total += float(probability.sum(dtype=np.float64))
        self.predicted_positive += int(predicted.sum())
        self.histogram += np.bincount(bins, minlength=self.BINS)
        if self.labelled:
            positive = outcome == 1
            bad = ~(positive | (outcome == 0))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise NotebookInputError(
                    f"{source}: data row {rows_before + row + 1}, column {outcome_column!r} (from fields.outcome_column): "
                    f"outcome {outcome[row].item()!r}; expected 0 or 1"
                )
            self.positive_histogram += np.bincount(bins[positive], minlength=self.BINS)
            self.actual_positive += int(positive.sum())
            self.true_positive += int((positive & predicted).sum())

    def roc_auc(self) -> float | None:
        """ROC AUC from the class histograms (see the class docstring); None unless both classes occur."""
        positives, negatives = self.positive_histogram, self.histogram - self.positive_histogram
        pairs = float(positives.sum()) * float(negatives.sum())
        if pairs == 0:
            return None
        negatives_below = np.cumsum(negatives) - negatives
        wins = float(np.dot(positives, negatives_below)) + 0.5 * float(np.dot(positives, negatives))
        return wins / pairs

    def auc_error_bound(self) -> float:
        """The most ``roc_auc()`` can differ from the exact AUC: half the share of pairs within one bin."""
        positives, negatives = self.positive_histogram, self.histogram - self.positive_histogram
        pairs = float(positives.sum()) * float(negatives.sum())
        return 0.5 * float(np.dot(positives, negatives)) / pairs if pairs else 0.0

    def metrics(self) -> dict[str, float]:
        result = {
            "row_count": float(self.rows),
            "mean_probability": self.total / self.rows,
            "positive_rate": self.predicted_positive / self.rows,
        }
        coarse = self.histogram.reshape(self.COARSE, -1).sum(axis=1)
        for i, count in enumerate(coarse):
            result[f"score_bin_{i / self.COARSE:.1f}_{(i + 1) / self.COARSE:.1f}"] = float(count)
        if self.labelled and self.rows:
            auc = self.roc_auc()
            if auc is not None:
                result["roc_auc"] = auc
            tp, actual, predicted = self.true_positive, self.actual_positive, self.predicted_positive
            false_positive, false_negative = predicted - tp, actual - tp
            result["accuracy"] = (self.rows - false_positive - false_negative) / self.rows
            result["precision"] = tp / predicted if predicted else 0.0
            result["recall"] = tp / actual if actual else 0.0
            result["f1"] = 2 * tp / (2 * tp + false_positive + false_negative) if tp else 0.0
        return {key: float(value) for key, value in result.items()}
