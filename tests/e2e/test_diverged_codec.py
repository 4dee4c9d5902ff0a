"""test_diverged_codec.py — a divergence that no NaN shows, with real psd and
psworker processes (on_divergence: stop unless said):
- inputs around 1e30, no normalisation, compression.push: fp16: the codec
  saturated the gradients at 65504, and the job used to end "done" with a
  loss of 1e29 and exit 0. Now every process exits 1, and the worker's
  line names the push gradient, fp16's range and the inputs' scale; with
  on_divergence: continue it warns once and the job finishes (exit 0);
- a linear model at lr 2: its loss grows about 1e8 times an epoch and is
  still finite after eight epochs (it used to end "done"): the loss's
  growth stops the job in epoch 2, naming both losses and optimizer.lr;
- compression.pull: fp16 on a model whose θ must reach 2e5: the pulls
  cannot carry it, and the line names θ, fp16's range and
  compression.pull.
Every wait is bounded; processes are killed by PID at the end."""
import os
import random

from harness import Env, Proc, free_port, no_leftovers, stop_procs, wait_for, write

env = Env()


def csv(name, rows):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(f"{v:.6g}" for v in r) + "\n")
    return path


rng = random.Random(1)
# balanced classes, four features around ±1e30; the label first
huge = [[i % 2] + [rng.gauss(1 if i % 2 else -1, 1) * 1e30 for _ in range(4)] for i in range(200)]
huge_train = csv("huge.csv", huge[:150])
huge_test = csv("huge_test.csv", huge[150:])
# y = 2e5 x: θ must reach 2e5
steep = csv("steep.csv", [[2e5 * x, x] for x in (i / 100 for i in range(100))])
line = os.path.join(env.data, "line.csv")


def run_job(name, model, features, train, lr, epochs, workers=2, test=None, extra=""):
    """Runs psd (--exit-when-done) and the workers to their end; returns
    (psd's exit code, the workers' codes, the workers' Procs, job path)."""
    test_line = f"  test: {test}\n" if test else ""
    text = f"""job: {name}
mode: sync
workers: {workers}
servers: [tcp://127.0.0.1:{free_port()}]
model: {{type: {model}, features: {features}, init: {{scheme: xavier, seed: 42}}}}
data:
  train: {train}
{test_line}  normalize: none
optimizer: {{type: sgd, lr: {lr}}}
training: {{epochs: {epochs}, batch_size: 16, seed: 7}}
shared_memory: false
heartbeat: {{interval_ms: 100, timeout_ms: 1000, deadline_ms: 20000}}
{extra}"""
    path = write(env, f"{name}.yaml", text)
    s = Proc(env, f"{name}-psd", [env.prog("psd"), "--config", path, "--exit-when-done"])
    wait_for(lambda: "listening on" in s.text() or s.p.poll() is not None, 20, "psd to listen")
    ws = [Proc(env, f"{name}-w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r)])
          for r in range(workers)]
    codes = [w.wait(60) for w in ws]
    code = s.wait(20)
    for p in [s] + ws:
        p.show()
    return code, codes, ws, path


def diverged_lines(ws):
    return [ln for w in ws for ln in w.text().splitlines()
            if ln.startswith("psworker: training diverged")]


def check_stopped(name, code, codes, ws, path, *parts):
    env.check(codes == [1] * len(ws), f"{name}: every worker exits 1 (exit {codes})")
    env.check(code == 1, f"{name}: psd exits 1: the job was stopped (exit {code})")
    own = diverged_lines(ws)
    env.check(all(len(diverged_lines([w])) <= 1 for w in ws) and own,
              f"{name}: the workers that saw it say why, in one line each ({own})")
    line = own[0] if own else ""
    for part in parts:
        env.check(part in line, f"{name}: the line says {part!r} ({line!r})")
    env.check(all("done:" not in w.text() for w in ws), f"{name}: no worker says done")
    no_leftovers(env, path)


# 1. push fp16 saturates gradients of inputs around 1e30
code, codes, ws, path = run_job("fp16-huge", "logistic", 4, huge_train, 0.1, 5, test=huge_test,
                                extra="compression: {push: fp16}\n")
check_stopped("fp16-huge", code, codes, ws, path, "in epoch 1: the push gradient holds ",
              "beyond fp16's range (65504)", "the inputs' scale is likely too large",
              "try data.normalize: standard")

# ... and with on_divergence: continue it says so once and trains on
code, codes, ws, path = run_job("fp16-continue", "logistic", 4, huge_train, 0.1, 3, workers=1,
                                extra="compression: {push: fp16}\non_divergence: continue\n")
warned = [ln for ln in ws[0].text().splitlines() if "training diverged" in ln]
env.check(codes == [0] and code == 0,
          f"fp16, on_divergence continue: the job finishes (psd {code}, worker {codes})")
env.check(len(warned) == 1 and "fp16's range" in warned[0] and warned[0].endswith("; going on"),
          f"fp16, on_divergence continue: one warning that names fp16's range ({warned})")
no_leftovers(env, path)

# 2. a loss that grows by orders of magnitude and stays finite
code, codes, ws, path = run_job("lr-2", "linear", 1, line, 2, 8, workers=1)
check_stopped("lr-2", code, codes, ws, path, "in epoch 2: the loss grew from ", " in epoch 1 to ",
              "(optimizer.lr 2 is likely too high)")

# 3. pull fp16 cannot carry a θ of 2e5
code, codes, ws, path = run_job("pull-fp16", "linear", 1, steep, 0.5, 20,
                                extra="compression: {pull: fp16}\n")
check_stopped("pull-fp16", code, codes, ws, path, "θ reaches fp16's range (65504)",
              "compression.pull: fp16 is too narrow")

stop_procs(env)
env.finish()
