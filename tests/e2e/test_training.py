"""test_training.py — psrun trains logistic regression on breast_cancer with
2 workers to test accuracy >= 0.95 in sync and in async mode, with one and
with two shards, from CSV and from LIBSVM."""
import os

from harness import Env, job_yaml, no_leftovers, psrun, write

env = Env()
cases = [
    ("sync-1shard", dict(mode="sync")),
    ("async-1shard", dict(mode="async")),
    ("sync-2shards-libsvm", dict(mode="sync", shards=2, fmt="libsvm")),
    ("async-2shards", dict(mode="async", shards=2)),
]
for name, kw in cases:
    job = write(env, f"{name}.yaml", job_yaml(env, f"bc-{name}", **kw))
    code, summary, err = psrun(env, job)
    env.check(code == 0, f"{name}: psrun exits 0")
    env.check(summary is not None, f"{name}: psrun wrote its summary")
    if summary is not None:
        metric = summary["test_metric"]
        env.check(metric["name"] == "accuracy", f"{name}: test metric is accuracy")
        env.check(metric["value"] >= 0.95, f"{name}: test accuracy {metric['value']:.4f} >= 0.95")
        env.check(summary["workers"] == 2 and summary["mode"] == kw["mode"],
                  f"{name}: summary names 2 workers and mode {kw['mode']}")
        env.check(summary["final_loss"] < 0.2, f"{name}: final loss {summary['final_loss']:.4f} < 0.2")
        # 455 rows over 2 workers, batch 32: 8 steps an epoch, 20 epochs, 2 workers
        env.check(summary["updates"] == 2 * 8 * 20, f"{name}: {summary['updates']} updates == 320")
        expected_version = 160 if kw["mode"] == "sync" else 320
        env.check(summary["version"] == expected_version,
                  f"{name}: final version {summary['version']} == {expected_version}")
        env.check(summary["samples_per_s"] > 0 and summary["wall_s"] > 0,
                  f"{name}: throughput and wall time reported")
    no_leftovers(env, job)
env.finish()
