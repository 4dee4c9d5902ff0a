"""test_psgen.py — psgen, the click-log generator: the same arguments give
byte-identical files (sha256) and another seed other ones; the files are
well-formed criteo rows (40 tab-separated fields, labels 0/1, integers,
8-hex-digit categories) with one probability in (0, 1) per test row; the
printed best AUC and log-loss match the files; the command on the first
line of the click example jobs runs; bad arguments are one line, exit 2,
and an unwritable prefix one line, exit 1. psgen libsvm numbers each
feature (field and log bucket or category, computed here) once, in the
order features first appear, train before test, sorted in each row; its
lines count rows, features and keys as the files hold them; liblinear
trains and predicts on its files where liblinear-tools is installed; a bad
row is one line naming file and line, exit 1, with no output left."""
import hashlib
import math
import os
import re
import shutil

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
usage_error([], "expected a command: clicks or libsvm")
usage_error(["frob", "--rows", "5", "--out", "x"], 'unknown command "frob": clicks or libsvm')
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
            "--seed: must be a number from 0 to 9223372036854775807, got -1, which is negative")
usage_error(["clicks", "--rows", "5", "--out", "x", "--bogus"], 'unknown option "--bogus"')
usage_error(["clicks", "--rows"], "--rows needs a value")

usage_error(["clicks", "--rows", "5", "--out", "x", "--format", "criteo"],
            "--format is an option of psgen libsvm, not clicks")
usage_error(["libsvm", "--format", "criteo", "--out-dir", "d", "--seed", "3", "f"],
            "--seed is an option of psgen clicks, not libsvm")
usage_error(["libsvm", "--out-dir", "d", "f"], "--format is required")
usage_error(["libsvm", "--format", "csv", "--out-dir", "d", "f"],
            '--format: criteo or libsvm64, got "csv"')
usage_error(["libsvm", "--format", "criteo", "f"], "--out-dir is required")
usage_error(["libsvm", "--format", "criteo", "--out-dir", "", "f"], "--out-dir: an empty path")
usage_error(["libsvm", "--format", "criteo", "--out-dir", "d"], "expected the files to convert")
usage_error(["libsvm", "--format", "criteo", "--out-dir", "d", "a/x.tsv", "b/x.tsv"],
            '"a/x.tsv" and "b/x.tsv" would both be written as x.tsv.liblinear')
usage_error(["libsvm", "--format", "criteo", "--out-dir", "d", "a/"], '"a/" is not a file name')

# a place that cannot be written: one line, exit 1
code, out, err = run([PSGEN, "clicks", "--rows", "5", "--out", "/proc/self/psgen/x"], 10)
env.check(code == 1 and err.count("\n") == 1 and err.startswith("psgen: /proc/self/psgen: "),
          f"an unwritable prefix is one line, exit 1 ({err.strip()!r})")

# psgen libsvm: the rows of "a" in liblinear's format. The keys are XXH3
# hashes, which Python does not have here, so the check is of the numbering:
# a feature (field, log bucket or category) computed here independently must
# get one number wherever it appears, distinct features distinct numbers,
# numbered 1, 2, 3, ... in the order they first appear, train before test.
LL = os.path.join(env.tmp, "ll")
code, out, err = run([PSGEN, "libsvm", "--format", "criteo", "--out-dir", LL,
                      a + ".train.tsv", a + ".test.tsv"], 60)
env.check(code == 0 and err == "" and out.count("\n") == 2,
          f"psgen libsvm exits 0 with a line a file (got {code}, {out!r}, {err.strip()!r})")
lines = out.splitlines()


def bucket(v):
    """The criteo convention of feature_hash.h (exact below 1e13)."""
    return v if 0 <= v <= 2 else (-1 if v < 0 else int(math.log(v) ** 2))


numbers = {}  # feature -> the number psgen gave it
expect = {}   # feature -> the number first appearance gives it
bad = []
counts = []
for src, name in ((a + ".train.tsv", "clicks.train.tsv"), (a + ".test.tsv", "clicks.test.tsv")):
    path = os.path.join(LL, name + ".liblinear")
    seen, new_keys, features, rows = set(), 0, 0, 0
    with open(src) as fs, open(path) as fo:
        for n, (row, line) in enumerate(zip(fs, fo), 1):
            rows += 1
            fields = row.rstrip("\n").split("\t")
            feats = [(i, bucket(int(v))) for i, v in enumerate(fields[1:14]) if v != ""]
            feats += [(13 + j, v) for j, v in enumerate(fields[14:]) if v != ""]
            for f in feats:
                if f not in expect:
                    expect[f] = len(expect) + 1
                    new_keys += 1
            words = line.split()
            got = [tuple(w.split(":")) for w in words[1:]]
            idx = [int(i) for i, _ in got]
            want = sorted(expect[f] for f in feats)
            if (words[0] != fields[0] or idx != want or any(v != "1" for _, v in got)) \
                    and len(bad) < 3:
                bad.append(f"{name}:{n}: {line[:60]!r}, want {fields[0]} {want[:6]}")
            seen.update(feats)
            features += len(feats)
    counts.append((rows, features, len(seen), new_keys))
    m = re.search(r"wrote (\S+) \((\d+) rows, [0-9.]+% positive, (\d+) features, (\d+) distinct "
                  r"keys, (\d+) new, [0-9.]+ s\)$", lines[len(counts) - 1] if lines else "")
    env.check(m is not None and m.group(1) == path and
              tuple(int(m.group(i)) for i in range(2, 6)) == counts[-1],
              f"{name}: the line names the file, rows, features, distinct and new keys "
              f"{counts[-1]} ({lines[len(counts) - 1] if len(lines) >= len(counts) else ''!r})")
env.check(not bad, f"each row's numbers are its features' in first-appearance order, sorted "
                   f"({'; '.join(bad)})")
env.check(counts[0][0] == 5000 and counts[1][0] == 2000,
          f"every row converted (got {counts[0][0]} and {counts[1][0]})")
env.check(sorted(os.listdir(LL)) == ["clicks.test.tsv.liblinear", "clicks.train.tsv.liblinear"],
          f"only the two outputs are in the folder ({sorted(os.listdir(LL))})")

# liblinear reads them (where Debian's liblinear-tools is installed)
train_ll = shutil.which("liblinear-train") or shutil.which("train")
predict_ll = shutil.which("liblinear-predict") or shutil.which("predict")
if train_ll and predict_ll:
    model = os.path.join(env.tmp, "ll.model")
    pred = os.path.join(env.tmp, "ll.pred")
    c1, _, e1 = run([train_ll, "-s", "0", "-B", "1", "-q", os.path.join(LL, "clicks.train.tsv"
                                                                     ".liblinear"), model], 60)
    c2, o2, e2 = run([predict_ll, "-b", "1", os.path.join(LL, "clicks.test.tsv.liblinear"), model,
                      pred], 60)
    ok = c1 == 0 and c2 == 0 and os.path.exists(pred)
    if ok:
        with open(pred) as f:
            head = f.readline().split()
            probs = [line.split() for line in f]
        ok = head in (["labels", "0", "1"], ["labels", "1", "0"]) and len(probs) == 2000
        col = head.index("1") if ok else 1
        p1 = [float(p[col]) for p in probs]
        got = auc(p1, test_labels)
        print(f"liblinear on the converted rows: test AUC {got:.4f}")
        ok = ok and got > 0.55
    env.check(ok, f"liblinear trains on the train file and predicts the test file, AUC > 0.55 "
                  f"({c1}, {c2}, {e1.strip()[-200:]!r} {e2.strip()[-200:]!r})")
else:
    print("liblinear-tools is not installed: the round trip through liblinear is not checked")

# a bad row: one line naming file and line, exit 1, no output for it
badfile = os.path.join(env.tmp, "bad.tsv")
with open(a + ".test.tsv") as f:
    head = [next(f) for _ in range(3)]
head[2] = "2" + head[2][1:]
with open(badfile, "w") as f:
    f.writelines(head)
code, out, err = run([PSGEN, "libsvm", "--format", "criteo", "--out-dir", LL, badfile], 10)
env.check(code == 1 and err.count("\n") == 1 and err.startswith(f"psgen: {badfile}:3: ")
          and not os.path.exists(os.path.join(LL, "bad.tsv.liblinear")),
          f"a bad label is one line naming file and line, exit 1, no output ({err.strip()!r})")
env.finish()
