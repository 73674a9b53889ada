"""``model.device`` of the training notebook: ``auto`` trains on CUDA when XGBoost can use a GPU here, else on the
CPU, and the run says which. This machine has no GPU: the CUDA side is measured by ``benchmarks/gpu_training.py``
on a machine that has one."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.examples.xgboost import xgboost_device
from ds_pipelines.notebook import recorded

no_gpu = pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU may be visible here")


@pytest.fixture(autouse=True)
def fresh_record(monkeypatch):
    monkeypatch.setattr(recorded, "_device", [])


def test_cpu_is_used_as_asked_without_looking_for_a_gpu(capsys):
    assert xgboost_device("cpu") == "cpu"
    assert recorded.recorded_device() == "cpu"
    assert capsys.readouterr().out == ""


@no_gpu
def test_auto_trains_on_the_cpu_without_a_gpu_and_says_why(capsys):
    assert xgboost_device("auto") == "cpu"
    assert capsys.readouterr().out == "training on the CPU: no GPU is visible\n"
    assert recorded.recorded_device() == "cpu"


@no_gpu
def test_cuda_without_a_gpu_is_refused_naming_the_key():
    with pytest.raises(NotebookInputError, match=r"model\.device is 'cuda' but no GPU is visible"):
        xgboost_device("cuda")
    assert recorded.recorded_device() is None


def test_the_training_run_says_which_device_trained(trained):
    """The tests' training config asks for the CPU (``model.device: cpu``, no GPU probe)."""
    from mlflow.tracking import MlflowClient

    box, result = trained
    assert re.search(r"best CV \w+: .* s on cpu: \{", result.stderr), result.stderr[-2000:]
    training = json.loads(result.stdout)["notebooks"][0]
    run = MlflowClient(tracking_uri=box.env["MLFLOW_TRACKING_URI"]).get_run(training["mlflow_run_id"])
    assert run.data.params["device"] == "cpu"
