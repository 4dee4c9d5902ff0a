"""model.py — psd.load_model: a job's output folder (manifest.json and one
.npy per tensor, as rank 0 writes it: docs/deployment.md) read back with
NumPy, and predictions of the dense built-in models (linear, logistic,
softmax, mlp) computed as psworker computes them (worker/model.c)."""
import json
import os

import numpy as np


class Model:
    """The tensors of a model folder (.tensors: name -> ndarray), its job's
    name and θ's version, and .type: the built-in model the tensors are
    laid out for ("linear", "logistic", "softmax", "mlp"; "custom" for any
    other layout)."""

    def __init__(self, folder, manifest, tensors, model_type, norm=None):
        self.folder = folder
        self.norm = norm  # (mean, std) of the training set, or None
        self.job = manifest.get("job")
        self.version = manifest.get("version")
        self.manifest = manifest
        self.tensors = tensors
        self.type = model_type

    def standardize(self, x):
        """x as the workers saw it: with the job's normalize: standard, each
        feature less the training set's mean over its deviation (a zero
        deviation read as 1, in float64 as psworker does); else x."""
        x = np.asarray(x, dtype=np.float32)
        if self.norm is None:
            return x
        mean, std = self.norm
        if x.shape[-1] != mean.shape[0]:
            raise ValueError(f"{self.folder}: rows of {x.shape[-1]} features, the model's "
                             f"normalize has {mean.shape[0]}")
        s = np.where((std > 0) & np.isfinite(std), std, 1.0)
        return ((x.astype(np.float64) - mean) / s).astype(np.float32)

    def _logits(self, x):
        t = self.tensors
        x = self.standardize(x)
        if self.type in ("linear", "logistic"):
            return x @ t["w"] + t["b"][0]
        if self.type == "softmax":
            return x @ t["W"] + t["b"]
        if self.type == "mlp":
            layers = len([k for k in t if k.startswith("W")])
            h = x
            for i in range(1, layers + 1):
                h = h @ t[f"W{i}"] + t[f"b{i}"]
                if i < layers:
                    h = np.maximum(h, 0)  # ReLU hidden layers
            return h
        raise ValueError(f"{self.folder}: no built-in prediction for a {self.type} model")

    def predict_proba(self, x):
        """Class probabilities of the rows of x (raw features: the job's
        normalize is applied here from the statistics the folder holds):
        logistic P(y=1) per row, softmax and mlp one row of classes per
        row."""
        z = self._logits(x)
        if self.type == "logistic":
            return 1.0 / (1.0 + np.exp(-z))
        if self.type == "linear":
            raise ValueError("a linear model predicts values, not probabilities: use predict")
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x):
        """Classes (logistic: 0/1; softmax, mlp: 0..classes-1), or values
        for a linear model."""
        if self.type == "linear":
            return self._logits(x)
        p = self.predict_proba(x)
        if self.type == "logistic":
            return (p >= 0.5).astype(np.int64)
        return p.argmax(axis=1)


def _infer_type(tensors):
    names = set(tensors)
    if names == {"w", "b"}:
        return "logistic"
    if names == {"W", "b"}:
        return "softmax"
    layers = len([n for n in names if n.startswith("W")])
    if layers and names == {f"{p}{i}" for i in range(1, layers + 1) for p in "Wb"}:
        return "mlp"
    return "custom"


def load_model(folder, model=None):
    """Reads a job's output folder. model names the built-in model when the
    tensors alone cannot tell ("linear": w and b are logistic's too)."""
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = {}
    for t in manifest["tensors"]:
        a = np.load(os.path.join(folder, t["file"]))
        if list(a.shape) != list(t["shape"]):
            raise ValueError(f"{folder}/{t['file']}: shape {a.shape}, the manifest says "
                             f"{t['shape']}")
        tensors[t["name"]] = a
    norm = None
    n = manifest.get("normalize")
    if n is not None:
        mean = np.load(os.path.join(folder, n["mean_file"]))
        std = np.load(os.path.join(folder, n["std_file"]))
        if mean.shape != (n["features"],) or std.shape != (n["features"],):
            raise ValueError(f"{folder}: normalize statistics of shapes {mean.shape} and "
                             f"{std.shape}, the manifest says {n['features']} features")
        norm = (mean, std)
    return Model(folder, manifest, tensors, model or _infer_type(tensors), norm)


def save_model(folder, job, version, tensors):
    """Writes tensors (name -> ndarray, in θ's order) as rank 0's output
    does: one float32 .npy per tensor and manifest.json with job, version,
    num_params and each tensor's name, file, shape and offset."""
    os.makedirs(folder, exist_ok=True)
    entries, offset = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        file = "".join(c if c.isalnum() or c in "_-." else "_" for c in name) + ".npy"
        np.save(os.path.join(folder, file), a)
        entries.append({"name": name, "file": file, "shape": list(a.shape), "offset": offset})
        offset += a.size
    manifest = {"job": job, "version": int(version), "num_params": offset, "tensors": entries}
    tmp = os.path.join(folder, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(folder, "manifest.json"))
