"""test_modes_local.py — local SGD (model averaging) on Fashion-MNIST softmax
with 2 workers, as config/examples/fashion_mnist_local_sgd.yaml runs it:
H = 8 local steps reach the test accuracy of the sync example
(fashion_mnist_softmax.yaml) within 1 point with 8x fewer pushes (psd's
counts, from its stop lines). Minutes of training: only in an optimised
build without sanitizers, and exits 77 (skipped) elsewhere."""
import os
import re
import sys

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

STOPPED = re.compile(r"stopped: version \d+, (\d+) pushes")
results = {}
for example in ("fashion_mnist_softmax", "fashion_mnist_local_sgd"):
    text = open(os.path.join(env.source, "config", "examples", example + ".yaml")).read()
    text = re.sub(r"servers: \[[^\]]*\]", f"servers: [tcp://127.0.0.1:{free_port()}]", text)
    text = re.sub(r"(?m)^output: .*$", f"output: {os.path.join(env.tmp, example)}", text)
    job = write(env, example + ".yaml", text)
    code, summary, err = psrun(env, job, timeout_s=560)
    env.check(code == 0 and summary is not None, f"{example}: psrun exits 0 with a summary")
    pushes = [int(m) for m in STOPPED.findall(err)]
    acc = summary["test_metric"]["value"] if summary else 0.0
    results[example] = (acc, pushes[0] if pushes else None)
    print(f"{example}: test accuracy {acc:.4f}, {results[example][1]} pushes")
    no_leftovers(env, job)
acc_s, p_s = results["fashion_mnist_softmax"]
acc_l, p_l = results["fashion_mnist_local_sgd"]
env.check(abs(acc_l - acc_s) <= 0.01,
          f"local SGD's test accuracy {acc_l:.4f} is within 1 point of sync's {acc_s:.4f}")
env.check(p_s is not None and p_l is not None and p_l * 8 <= p_s + 16,
          f"local SGD pushes 8x less: {p_l} pushes against sync's {p_s}")
env.finish()
