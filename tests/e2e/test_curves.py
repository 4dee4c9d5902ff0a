"""test_curves.py — the training curves. psrun writes an SVG beside its
summary (X.svg for --summary-json X.json, or where --curves says) and
psworker --curves its own; each is parsed as XML, every worker's line is read
back through its panel's transform (the data-* attributes) and compared with
the per-epoch figures of the summary (logistic regression, a binary
classifier: training loss, test accuracy and test AUC). The title names the
job, model, mode and codec, the axes and legend are labelled, there is one
line per worker that finished, and a file that can never be written (its
folder is missing) is one line naming it, before the job starts."""
import json
import math
import os
import xml.etree.ElementTree as ET

from harness import Env, Proc, job_yaml, no_leftovers, psrun, run, stop_procs, write

SVG = "{http://www.w3.org/2000/svg}"
EPOCHS = 8
env = Env()


def load_json(path, what):
    """The JSON at path, or None (a failed check) when there is none."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        env.check(False, f"{what}: the summary {os.path.basename(path)} reads ({e})")
        return None


def panels_of(root):
    """{data-name: <g class="panel">} of an SVG."""
    return {g.get("data-name"): g for g in root.iter(SVG + "g") if g.get("class") == "panel"}


def texts_of(el, cls):
    return [t.text or "" for t in el.iter(SVG + "text") if t.get("class") == cls]


def lines_of(panel):
    """{rank: [(epoch, value), ...]} of a panel's lines and points, read back
    through the panel's transform (svg.h)."""
    t = {k: float(panel.get("data-" + k)) for k in (
        "plot-x", "plot-y", "plot-width", "plot-height", "x-min", "x-max", "y-min", "y-max")}

    def value_at(px, py):
        x = t["x-min"] + (px - t["plot-x"]) / t["plot-width"] * (t["x-max"] - t["x-min"])
        y = t["y-min"] + (t["plot-y"] + t["plot-height"] - py) / t["plot-height"] * (
            t["y-max"] - t["y-min"])
        return x, y

    lines = {}
    for el in panel.iter():
        if el.get("class") == "line":
            pts = [tuple(float(c) for c in p.split(",")) for p in el.get("points").split()]
        elif el.get("class") == "point":
            pts = [(float(el.get("cx")), float(el.get("cy")))]
        else:
            continue
        lines.setdefault(int(el.get("data-rank")), []).extend(value_at(*p) for p in pts)
    for pts in lines.values():
        pts.sort()
    return lines, t["y-max"] - t["y-min"]


def close(got, want, span):
    return abs(got - want) <= 1e-3 * max(abs(want), 1e-3 * span)


def compare_panel(panel, curves, key, what):
    """Each curve's figures under key against its line in panel."""
    lines, span = lines_of(panel)
    want_ranks = sorted(c["rank"] for c in curves)
    env.check(sorted(lines) == want_ranks,
              f"{what}: one line per worker that finished, ranks {want_ranks} (got {sorted(lines)})")
    for c in curves:
        want = [((i + 1) * c["every"], v) for i, v in enumerate(c[key]) if v is not None]
        got = lines.get(c["rank"], [])
        ok = len(got) == len(want) and len(want) > 0 and all(
            close(ge, we, 1.0) and close(gv, wv, span) for (ge, gv), (we, wv) in zip(got, want))
        env.check(ok, f"{what}: rank {c['rank']}'s {len(want)} points read back as the "
                  f"summary's {key} per epoch")
        if not ok:
            print(f"  want {want}\n  got  {got}")


def check_svg(path, summary, mode, codec, what, model="logistic", metric="accuracy"):
    """The SVG at path against the summary's curves; False when it is not there."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        env.check(False, f"{what}: {os.path.basename(path)} is there and parses as XML ({e})")
        return False
    env.check(root.tag == SVG + "svg", f"{what}: the document is an SVG")
    title = texts_of(root, "title")
    want = f"{summary['job']} \u2014 {model}, mode {mode}, codec {codec}"
    env.check(title == [want], f"{what}: the title is {want!r} (got {title})")
    panels = panels_of(root)
    want_panels = {"train_loss", "test_metric", "test_auc"}
    env.check(set(panels) == want_panels,
              f"{what}: panels of training loss, test metric and test AUC ({sorted(panels)})")
    if set(panels) != want_panels:
        return True
    for name, ylabel in (("train_loss", "training loss (log-loss)"),
                         ("test_metric", f"test {metric}"), ("test_auc", "test AUC")):
        p = panels[name]
        env.check(texts_of(p, "x-label") == ["epoch"] and texts_of(p, "y-label") == [ylabel],
                  f"{what}: {name}'s axes say epoch and {ylabel!r}")
        env.check(len(texts_of(p, "tick")) >= 4, f"{what}: {name}'s axes have tick labels")
    curves = summary["curves"]
    legend = sorted(texts_of(root, "legend-label"))
    env.check(legend == sorted(f"rank {c['rank']}" for c in curves),
              f"{what}: the legend names every worker's line ({legend})")
    compare_panel(panels["train_loss"], curves, "train_loss", what + ", training loss")
    compare_panel(panels["test_metric"], curves, "test_metric", what + ", test metric")
    compare_panel(panels["test_auc"], curves, "test_auc", what + ", test AUC")
    return True


def check_summary_curves(s, workers, what):
    """The summary's per-epoch figures: one curve per worker, every epoch."""
    curves = s.get("curves", [])
    env.check(sorted(c["rank"] for c in curves) == list(range(workers)),
              f"{what}: the summary has a curve for each of {workers} workers")
    for c in curves:
        auc = c.get("test_auc") or []
        env.check(c["every"] == 1 and len(c["train_loss"]) == EPOCHS and
                  len(c["test_metric"]) == EPOCHS and len(auc) == EPOCHS and
                  all(v is not None and math.isfinite(v)
                      for v in c["train_loss"] + c["test_metric"] + auc) and
                  all(0.9 <= v <= 1.0 for v in auc),
                  f"{what}: rank {c['rank']} has {EPOCHS} finite training losses and test figures, "
                  f"its AUCs in [0.9, 1]")
    lowest = min(curves, key=lambda c: c["rank"]) if curves else None
    if lowest:
        env.check(lowest["train_loss"][-1] == s["metrics"]["train_loss_last_epoch"],
                  f"{what}: the last epoch's loss is the summary's train_loss_last_epoch")
    # psd's figures at the end: sync applies each round's mean once, so no
    # push is stale, and every rank pushed every round
    st, ranks = s.get("staleness"), s.get("ranks") or []
    env.check(isinstance(st, dict) and st["max"] == 0 and st["p99"] == 0 and st["mean"] == 0,
              f"{what}: psd's staleness of the applied pushes is in the summary ({st})")
    env.check([r["rank"] for r in ranks] == list(range(workers)) and
              len({r["clock"] for r in ranks}) == 1 and
              all(r["pushes"] == r["clock"] > 0 for r in ranks),
              f"{what}: psd's clock and pushes of each rank are in the summary ({ranks})")


# psrun: the SVG beside the summary, sync with fp16 pushes, 2 workers
job = write(env, "curves.yaml", job_yaml(env, "curves-fp16", workers=2, epochs=EPOCHS,
                                         extra="compression: {push: fp16}\n"))
summary_path = job + ".summary.json"
svg_path = job + ".summary.svg"
code, summary, err = psrun(env, job, timeout_s=120)
env.check(code == 0 and summary is not None, f"psrun finishes the job (exit {code})")
env.check(os.path.exists(svg_path), "psrun writes X.svg beside --summary-json X.json")
if summary is not None:
    check_summary_curves(summary, 2, "psrun")
    if check_svg(svg_path, summary, "sync", "fp16", "psrun"):
        # sync: the last epoch's evaluation is of the final θ
        c0 = [c for c in summary["curves"] if c["rank"] == 0]
        env.check(bool(c0) and c0[0]["test_metric"][-1] == summary["test_metric"]["value"],
                  "psrun: sync's last test figure per epoch is the final test metric")
        env.check(bool(c0) and c0[0]["test_auc"][-1] == summary["test_auc"]["value"],
                  "psrun: sync's last test AUC per epoch is the final test AUC")
no_leftovers(env, job)

# --curves names the file; a summary not asked for is not needed; a file that
# can never be written (its folder is missing) is refused in one line naming
# it before the job starts
own = os.path.join(env.tmp, "own.svg")
code, _, err = run([env.prog("psrun"), "--curves", own, job], 120)
env.check(code == 0 and os.path.exists(own), f"psrun --curves FILE without a summary (exit {code})")
try:
    lines, _ = lines_of(panels_of(ET.parse(own).getroot())["train_loss"])
    env.check(sorted(lines) == [0, 1] and all(len(v) == EPOCHS for v in lines.values()),
              "psrun --curves: two lines of 8 epochs")
except (OSError, ET.ParseError, KeyError) as e:
    env.check(False, f"psrun --curves: the file parses ({e})")
bad = "/nonexistent/curves.svg"
code, _, err = run([env.prog("psrun"), "--summary-json", summary_path, "--curves", bad, job], 120)
said = [ln for ln in err.splitlines() if bad in ln]
env.check(code == 2, f"psrun: an SVG that cannot be written exits 2 (got {code})")
env.check(said == [f"psrun: --curves: {bad}: the folder /nonexistent does not exist"],
          f"psrun: one line names the file ({said})")
env.check("psrun: job " not in err, "psrun: the job did not start")
no_leftovers(env, job)

# psworker --curves on its own: one worker against a psd of its own
solo = write(env, "solo.yaml", job_yaml(env, "curves-solo", workers=1, epochs=EPOCHS))
psd = Proc(env, "psd", [env.prog("psd"), "--config", solo, "--exit-when-done"])
solo_json, solo_svg = solo + ".json", solo + ".svg"
code, _, err = run([env.prog("psworker"), "--config", solo, "--rank", "0", "--summary-json",
                    solo_json, "--curves", solo_svg], 120)
env.check(code == 0, f"psworker --curves: the worker exits 0 (got {code}) {err[-300:]}")
env.check(psd.wait(30) == 0, "psworker --curves: psd exits 0 once the worker is done")
s = load_json(solo_json, "psworker")
if s is not None:
    check_summary_curves(s, 1, "psworker")
    env.check(s.get("rank") == 0, "psworker: its summary names its rank")
    check_svg(solo_svg, s, "sync", "none", "psworker")
stop_procs(env)
no_leftovers(env, solo)

# psworker: a curves file that can never be written is one line and exit 2,
# before the worker looks for its servers (none runs here)
code, _, err = run([env.prog("psworker"), "--config", solo, "--rank", "0", "--curves", bad], 120)
said = [ln for ln in err.splitlines() if bad in ln]
env.check(code == 2, f"psworker: an SVG that cannot be written exits 2 (got {code})")
env.check(said == [f"psworker: --curves: {bad}: the folder /nonexistent does not exist"],
          f"psworker: one line names the file ({said})")
stop_procs(env)
no_leftovers(env, solo)
env.finish()
