"""test_fashion.py — the Fashion-MNIST example jobs as a user runs them (2
workers, 1 shard, sync, IDX files from the Debian package
dataset-fashion-mnist): softmax regression reaches test accuracy >= 0.83
and the quick start's MLP >= 0.875; the wall time is printed (timing
targets belong in benchmarks). Minutes of training: it runs only in an
optimised build without sanitizers, and exits 77 (skipped) elsewhere."""
import os
import re
import sys
import time

from harness import Env, build_option, free_port, no_leftovers, psrun, write

env = Env()
why = None
if build_option(env, "PS_SANITIZER"):
    why = f"built with sanitizers ({build_option(env, 'PS_SANITIZER')})"
elif build_option(env, "CMAKE_BUILD_TYPE") not in ("Release", "RelWithDebInfo"):
    why = f"build type {build_option(env, 'CMAKE_BUILD_TYPE') or '(none)'} is not optimised"
elif not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    why = "the Debian package dataset-fashion-mnist is not installed"
if why:
    print(f"skipped: {why}")
    sys.exit(77)

for example, floor in (("fashion_mnist_softmax", 0.83), ("fashion_mnist_mlp", 0.875)):
    text = open(os.path.join(env.source, "config", "examples", example + ".yaml")).read()
    text = re.sub(r"servers: \[[^\]]*\]", f"servers: [tcp://127.0.0.1:{free_port()}]", text)
    text = re.sub(r"(?m)^output: .*$", f"output: {os.path.join(env.tmp, example)}", text)
    job = write(env, example + ".yaml", text)
    t0 = time.monotonic()
    code, summary, err = psrun(env, job, timeout_s=560)
    wall_s = time.monotonic() - t0
    env.check(code == 0, f"{example}: psrun exits 0")
    env.check(summary is not None, f"{example}: psrun wrote its summary")
    if summary is not None:
        acc = summary["test_metric"]["value"]
        env.check(acc >= floor, f"{example}: test accuracy {acc:.4f} >= {floor}")
        print(f"{example}: test accuracy {acc:.4f}, test log-loss "
              f"{summary['test_loss']['value']:.4f}, psrun wall time {wall_s:.1f} s")
    no_leftovers(env, job)
env.finish()
