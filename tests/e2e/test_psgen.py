"""test_psgen.py — psgen, the click-log generator: the same arguments give
byte-identical files (sha256) and another seed other ones; the files are
well-formed criteo rows (40 tab-separated fields, labels 0/1, integers,
8-hex-digit categories) with one probability in (0, 1) per test row; the
printed best AUC and log-loss match the files; the command on the first
line of the click example jobs runs; bad arguments are one line, exit 2,
and an unwritable prefix one line, exit 1."""
import hashlib
import math
import os
import re

from harness import Env, build_option, run

env = Env()
version = build_option(env, "CMAKE_PROJECT_VERSION")
PSGEN = os.path.abspath(env.prog("psgen"))
SUFFIXES = (".train.tsv", ".test.tsv", ".test.prob")
HEX8 = re.compile(r"^[0-9a-f]{8}$")
INT = re.compile(r"^-?[0-9]+$")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def generate(prefix, rows, test_rows, seed):
    """Runs psgen; returns (exit code, stdout, stderr)."""
    return run([PSGEN, "clicks", "--rows", str(rows), "--test-rows", str(test_rows), "--seed",
                str(seed), "--out", prefix], 120)


def usage_error(args, what):
    """psgen with args says exactly `psgen: what (try 'psgen --help')`, exit 2."""
    code, out, err = run([PSGEN, *args], 10)
    want = f"psgen: {what} (try 'psgen --help')\n"
    ok = code == 2 and err == want and out == ""
    got = "" if ok else f" (got exit {code}, {err!r})"
    env.check(ok, f"psgen {' '.join(args)}: exit 2, {want.strip()}{got}")


def auc(scores, labels):
    """Exact AUC: ties between a positive and a negative count half."""
    pairs = sorted(zip(scores, labels))
    pos = sum(labels)
    neg = len(labels) - pos
    good, neg_below, i = 0.0, 0, 0
    while i < len(pairs):
        j = i
        gp = gn = 0
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            gp += pairs[j][1]
            gn += 1 - pairs[j][1]
            j += 1
        good += gp * neg_below + 0.5 * gp * gn
        neg_below += gn
        i = j
    return good / (pos * neg)


def check_rows(path, rows):
    """Every line a criteo row; returns the labels."""
    labels = []
    bad = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            ok = (len(fields) == 40 and fields[0] in ("0", "1")
                  and all(v == "" or INT.match(v) for v in fields[1:14])
                  and all(v == "" or HEX8.match(v) for v in fields[14:]))
            if not ok and len(bad) < 3:
                bad.append(f"{path}:{n}: {line[:80]!r}")
            labels.append(int(fields[0]) if fields[0] in ("0", "1") else 0)
    env.check(not bad and len(labels) == rows,
              f"{os.path.basename(path)}: {rows} criteo rows of 40 fields (got {len(labels)}"
              f"{', ' + '; '.join(bad) if bad else ''})")
    return labels


# the same seed twice: byte-identical files
a, b, c = (os.path.join(env.tmp, d, "clicks") for d in ("a", "b", "c"))
code, out, err = generate(a, 5000, 2000, 7)
env.check(code == 0 and err == "", f"psgen clicks exits 0 (got {code}, {err.strip()!r})")
env.check(out.count("\n") == 1 and out.startswith("psgen: wrote "),
          f"psgen prints one line ({out.strip()!r})")
code2, out2, _ = generate(b, 5000, 2000, 7)
env.check(code2 == 0, "psgen runs again with the same arguments")
for s in SUFFIXES:
    env.check(os.path.exists(a + s) and sha256(a + s) == sha256(b + s),
              f"clicks{s}: the same sha256 for the same seed")
generate(c, 5000, 2000, 8)
env.check(sha256(a + ".train.tsv") != sha256(c + ".train.tsv"),
          "another seed gives another train file")
env.check(not [f for f in os.listdir(os.path.dirname(a)) if not f.startswith("clicks.")]
          and len(os.listdir(os.path.dirname(a))) == 3,
          "only the three files are left in the output folder")

# well-formed rows, and the printed figures match the files
check_rows(a + ".train.tsv", 5000)
test_labels = check_rows(a + ".test.tsv", 2000)
with open(a + ".test.prob") as f:
    probs = [float(x) for x in f.read().split()]
env.check(len(probs) == 2000 and all(0.0 < p < 1.0 for p in probs),
          f"clicks.test.prob: 2000 probabilities in (0, 1) (got {len(probs)})")
m = re.search(r"\((\d+) rows, ([0-9.]+)% positive\).*best achievable test AUC ([0-9.]+), "
              r"log-loss ([0-9.]+)$", out.strip())
env.check(m is not None, f"the line names the rows, the positive rate, AUC and log-loss ({out!r})")
if m and len(probs) == 2000:
    want_auc = auc(probs, test_labels)
    want_ll = -sum(math.log(p if y else 1 - p) for p, y in zip(probs, test_labels)) / 2000
    env.check(abs(float(m.group(3)) - want_auc) < 1e-4,
              f"printed AUC {m.group(3)} is the files' {want_auc:.4f}")
    env.check(abs(float(m.group(4)) - want_ll) < 1e-4,
              f"printed log-loss {m.group(4)} is the files' {want_ll:.4f}")
    rate = float(m.group(2))
    env.check(15 <= rate <= 35, f"positive rate {rate}% is click-log like")

# the command on the click examples' first line runs (with fewer rows)
for name in ("clicks_logistic.yaml", "clicks_fm.yaml"):
    with open(os.path.join(env.source, "config", "examples", name)) as f:
        first = f.readline()
    words = first.split()
    ok = words[:3] == ["#", "data:", "psgen"] and "--out" in words
    if ok:
        args = words[3:]
        args[args.index("--rows") + 1] = "300"
        args[args.index("--test-rows") + 1] = "30"
        cwd = os.path.join(env.tmp, name)
        os.makedirs(os.path.join(cwd, "data"))
        code, _, err = run([PSGEN, *args], 60, cwd=cwd)
        ok = code == 0 and all(os.path.exists(os.path.join(cwd, "data", "clicks" + s))
                               for s in SUFFIXES)
    env.check(ok, f"{name}: the psgen command of its first line runs ({first.strip()!r})")

# usage
code, out, err = run([PSGEN, "--help"], 10)
env.check(code == 0 and out.startswith("usage: psgen clicks ") and err == "",
          "psgen --help exits 0 with its usage on stdout")
code, out, err = run([PSGEN, "--version"], 10)
env.check(code == 0 and out == f"psgen {version}\n", f"psgen --version prints 'psgen {version}'")
usage_error([], "expected a command: clicks")
usage_error(["frob", "--rows", "5", "--out", "x"], 'unknown command "frob": clicks')
usage_error(["clicks", "extra", "--rows", "5", "--out", "x"], 'unexpected argument "extra"')
usage_error(["clicks", "--out", "x"], "--rows is required")
usage_error(["clicks", "--rows", "5"], "--out is required")
usage_error(["clicks", "--rows", "5", "--out", ""], "--out: an empty prefix")
usage_error(["clicks", "--rows", "0", "--out", "x"],
            "--rows: must be a number from 1 to 1099511627776, got 0")
usage_error(["clicks", "--rows", "1e6", "--out", "x"],
            "--rows: must be a number from 1 to 1099511627776, got 1e6")
usage_error(["clicks", "--rows", "5", "--test-rows", "100000001", "--out", "x"],
            "--test-rows: must be a number from 1 to 100000000, got 100000001")
usage_error(["clicks", "--rows", "5", "--seed", "-1", "--out", "x"],
            "--seed: must be a number from 0 to 9223372036854775807, got -1")
usage_error(["clicks", "--rows", "5", "--out", "x", "--bogus"], 'unknown option "--bogus"')
usage_error(["clicks", "--rows"], "--rows needs a value")

# a place that cannot be written: one line, exit 1
code, out, err = run([PSGEN, "clicks", "--rows", "5", "--out", "/proc/self/psgen/x"], 10)
env.check(code == 1 and err.count("\n") == 1 and err.startswith("psgen: /proc/self/psgen: "),
          f"an unwritable prefix is one line, exit 1 ({err.strip()!r})")
env.finish()
