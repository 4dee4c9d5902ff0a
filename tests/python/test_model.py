"""test_model.py — psd.load_model reads a job's output folder and predicts
with NumPy as psworker does: a softmax and an mlp trained by psrun give the
test accuracy psworker reported, from the raw test rows (with normalize:
standard, the statistics the folder holds applied by load_model)."""
import json
import os
import subprocess

import numpy as np
import pytest

from conftest import DATA, free_port, prog


def digits_job(folder, model, extra="", normalize="none"):
    text = (f"job: py-model-{model}\nworkers: 2\nservers: [tcp://127.0.0.1:{free_port()}]\n"
            f"model: {{type: {model}, features: 64, classes: 10{extra}}}\n"
            f"data: {{train: {DATA}/digits.train.csv, test: {DATA}/digits.test.csv, "
            f"normalize: {normalize}}}\n"
            f"optimizer: {{type: sgd, lr: 0.01}}\ntraining: {{epochs: 5, batch_size: 32}}\n"
            f"output: {folder}/out\n")
    path = os.path.join(folder, "job.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("model,extra,normalize", [("softmax", "", "none"),
                                                   ("mlp", ", hidden: [16]", "none"),
                                                   ("mlp", ", hidden: [16]", "standard")])
def test_load_model_predicts_as_psworker(psd_pkg, tmp_path, model, extra, normalize):
    psd = psd_pkg
    job = digits_job(str(tmp_path), model, extra, normalize)
    summary = str(tmp_path / "summary.json")
    r = subprocess.run([prog("psrun"), "--summary-json", summary, job], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(summary) as f:
        reported = json.load(f)["test_metric"]["value"]
    m = psd.load_model(str(tmp_path / "out"))
    assert m.type == model and m.job == f"py-model-{model}"
    assert (m.norm is not None) == (normalize == "standard")
    test = np.loadtxt(os.path.join(DATA, "digits.test.csv"), delimiter=",", dtype=np.float32)
    y, x = test[:, 0].astype(int), test[:, 1:]
    acc = float((m.predict(x) == y).mean())
    assert abs(acc - reported) < 1e-3, (acc, reported)
    p = m.predict_proba(x)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)


def test_save_model_round_trip(psd_pkg, tmp_path):
    psd = psd_pkg
    t = {"w": np.arange(3, dtype=np.float32), "b": np.array([0.5], np.float32)}
    psd.save_model(str(tmp_path), "j", 7, t)
    m = psd.load_model(str(tmp_path))
    assert m.type == "logistic" and m.version == 7 and m.manifest["num_params"] == 4
    assert list(m.predict(np.array([[1, 0, 0], [-1, -1, -1]], np.float32))) == [1, 0]
    assert psd.load_model(str(tmp_path), model="linear").predict(
        np.ones((1, 3), np.float32))[0] == pytest.approx(3.5)
