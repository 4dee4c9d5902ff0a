"""test_fashion_cnn.py — the PyTorch example (python/examples/fashion_cnn.py)
under psrun, on a CI subset: 2 Python workers, 6000 training images, 1 epoch
(PSD_CNN_ARGS), the full test set; rank 0's final test accuracy must reach
0.70, and the model it wrote (manifest.json + .npy), loaded back into the
network by --evaluate, must score exactly that. Skipped (77) without torch."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h

THRESHOLD = 0.70


def main():
    env = h.Env()
    h.torch_workers(env)
    example = os.path.join(env.source, "python", "examples")
    script = os.path.join(example, "fashion_cnn.py")
    with open(os.path.join(example, "fashion_cnn.yaml")) as f:
        text = f.read()
    out = os.path.join(env.tmp, "out")
    text = re.sub(r"servers: \[.*\]", f"servers: [tcp://127.0.0.1:{h.free_port()}]", text)
    text = text.replace("output: out/fashion_cnn", f"output: {out}")
    text = text.replace("command: [/usr/bin/python3, fashion_cnn.py]",
                        f"command: [{sys.executable}, {script}]")
    job = h.write(env, "fashion_cnn.yaml", text)
    os.environ["PYTHONPATH"] = os.path.join(os.path.dirname(env.bin), "python")
    os.environ["PSD_CNN_ARGS"] = f"--train-limit 6000 --epochs 1 --min-accuracy {THRESHOLD}"
    t0 = time.monotonic()
    code, stdout, err = h.run([env.prog("psrun"), job], 300)
    took = time.monotonic() - t0
    print("\n".join(err.splitlines()[-8:]) + "\n" + stdout)
    env.check(code == 0, f"psrun trains the CNN with 2 Python workers: exit {code}, {took:.0f} s")
    m = re.search(r"\[w0\] fashion_cnn w0: done: test accuracy ([0-9.]+)", err)
    acc = float(m.group(1)) if m else 0.0
    env.check(acc >= THRESHOLD, f"test accuracy {acc:.4f} >= {THRESHOLD} (6000 images, 1 epoch)")
    env.check(os.path.exists(os.path.join(out, "manifest.json")), "rank 0 wrote the model folder")
    code, stdout, err = h.run([sys.executable, script, "--job", job, "--evaluate", out], 120)
    m = re.search(r"test accuracy ([0-9.]+)", stdout)
    again = float(m.group(1)) if m else -1
    env.check(code == 0 and abs(again - acc) < 1e-4,
              f"the saved model, loaded into the network, scores {again:.4f} too")
    h.no_leftovers(env, job)
    env.finish()


if __name__ == "__main__":
    main()
