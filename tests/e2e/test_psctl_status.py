"""test_psctl_status.py — psctl status, status --json and top against a live
job: two psd shards, three psworkers (digits, softmax, sync), rank 1 killed
with SIGKILL once it has pushed:
- once psd evicted it, status shows rank 1 "evicted" and ranks 0 and 2
  "live" with clock > 0 and pushes > 0, merged over both shards;
- --json is one object, "shards" and "workers", every figure a number or
  null, keys in snake_case, the same states;
- top --count 2 on a pipe prints two tables a blank line apart (two JSON
  lines with --json);
- a shard stopped (SIGSTOP) shows in top's rows as not answering, top goes
  on to its count and exits 1; status names it on stderr and still prints
  the shard that answered;
- --help describes it all; --count without top is a usage error (exit 2).
Every wait is bounded; processes are killed by PID at the end."""
import json
import math
import os
import re
import signal
import socket

from harness import Env, Proc, free_port, no_leftovers, run, stop_procs, wait_for, write

env = Env()
TIMEOUT_MS = 1000
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
HOST = socket.gethostname()[:63]  # what a worker names itself by

# enough epochs that nobody finishes while the test looks (about 15 rounds an
# epoch); the test ends the job itself with SIGTERM to both shards
path = write(env, "status.yaml", f"""job: psctl-status
mode: sync
workers: 3
servers: [tcp://127.0.0.1:{free_port()}, tcp://127.0.0.1:{free_port()}]
model: {{type: softmax, features: 64, classes: 10, init: {{scheme: zeros}}}}
data:
  train: {env.data}/digits.train.csv
  test: {env.data}/digits.test.csv
optimizer: {{type: sgd, lr: 0.05, l2: 0.003}}
training: {{epochs: 20000, batch_size: 32, seed: 7}}
heartbeat: {{interval_ms: 100, timeout_ms: {TIMEOUT_MS}}}
on_worker_loss: continue
shared_memory: false
""")


def psctl(*args, timeout_s=30):
    return run([env.prog("psctl"), "--config", path] + list(args), timeout_s)


def no_nan(text):
    raise ValueError(f"{text} in JSON")


def status_json(*args):
    """(exit code, the object or None, stderr) of psctl status --json."""
    code, out, err = psctl("--timeout-ms", "3000", "--json", *args, "status")
    try:
        return code, json.loads(out, parse_constant=no_nan), err
    except ValueError as e:
        print(f"not JSON ({e}): {out!r}")
        return code, None, err


def by_rank(obj):
    return {w["rank"]: w for w in obj["workers"]} if obj else {}


def worker_rows(table):
    """{rank: (state, clock, pushes, host)} of the worker table psctl prints."""
    rows, seen_head = {}, False
    for line in table.splitlines():
        cells = line.split()
        if cells[:2] == ["rank", "state"]:
            seen_head = True
            continue
        if seen_head and len(cells) >= 10 and cells[0].isdigit():
            # rank state last-seen("0.1 s ago": 3 cells) clock pushes loss samples/s stale host
            rows[int(cells[0])] = (cells[1], int(cells[5]), int(cells[6]), cells[-1])
    return rows


def keys_snake(obj, where):
    bad = [k for k in obj if not SNAKE.match(k)]
    env.check(not bad, f"{where}: keys are snake_case ({bad or 'all'})")


def figures_numbers(obj, where, text_keys):
    """Every key but text_keys holds a number (not a bool) or null."""
    bad = [k for k, v in obj.items() if k not in text_keys and v is not None and
           (isinstance(v, bool) or not isinstance(v, (int, float)))]
    env.check(not bad, f"{where}: every figure is a number or null ({bad or 'all'})")


code, out, _ = run([env.prog("psctl"), "--help"], 10)
env.check(code == 0 and all(w in out for w in ("top", "--json", "--interval", "--count",
                                                 '"last_seen_ms"', '"samples_per_s"')),
          "psctl --help describes top, --json and its keys")
code, _, err = psctl("--count", "2", "status")
env.check(code == 2 and "--interval and --count are for top" in err,
          f"--count with status is a usage error, exit 2 ({err.strip()})")

psds = [Proc(env, f"psd{i}", [env.prog("psd"), "--config", path, "--shard", str(i)])
        for i in range(2)]
for i, s in enumerate(psds):
    env.check(wait_for(lambda: "listening on" in s.text(), 20, f"psd{i} to listen"),
              f"psd{i} listens")
workers = [Proc(env, f"w{r}", [env.prog("psworker"), "--config", path, "--rank", str(r)])
           for r in range(3)]


def all_pushed():
    _, obj, _ = status_json()
    w = by_rank(obj)
    return len(w) == 3 and all(w[r]["state"] == "live" and w[r]["pushes"] > 0 for r in range(3))


env.check(wait_for(all_pushed, 60, "all three ranks to push"),
          "status --json shows all three ranks live and pushing")

# ---- rank 1 killed, evicted by both shards ----------------------------------
os.kill(workers[1].p.pid, signal.SIGKILL)
workers[1].wait(10)
evicted = re.compile(r"rank 1 \(worker \d+\) silent for \d+ ms: evicted")
env.check(wait_for(lambda: all(evicted.search(s.text()) for s in psds), 20,
                   "both shards to evict rank 1"), "both shards evict the killed rank 1")

code, out, err = psctl("--timeout-ms", "3000", "status")
print(out, err)
env.check(code == 0 and err == "", f"psctl status exits 0 with nothing on stderr (exit {code})")
shard_lines = [l for l in out.splitlines() if re.match(r"^[01]\s+tcp://127\.0\.0\.1:\d+\s", l)]
env.check(len(shard_lines) == 2 and all(re.search(r"\s2/3\s", l) for l in shard_lines),
          f"one row per shard, 2 of 3 workers live on each ({len(shard_lines)} rows)")
rows = worker_rows(out)
env.check(sorted(rows) == [0, 1, 2], f"one row per rank ({sorted(rows)})")
env.check(rows.get(1, ("",))[0] == "evicted", f"rank 1 shows as evicted ({rows.get(1)})")
env.check(all(rows.get(r, ("",))[0] == "live" for r in (0, 2)),
          f"ranks 0 and 2 show as live ({rows.get(0)}, {rows.get(2)})")
env.check(all(r in rows and rows[r][1] > 0 and rows[r][2] > 0 for r in (0, 2)),
          "ranks 0 and 2 have clock > 0 and pushes > 0")
env.check(all(rows.get(r, ("",) * 4)[3] == HOST for r in range(3)), f"each row names host {HOST}")
# a worker row ends in its host, whose name may run past the 80th column:
# count it as 4 characters, as long as the header's "host"
widths = [len(l) - len(l.split()[-1]) + 4 if "s ago" in l else len(l)
          for l in out.splitlines() if not l.startswith("       clocks")]
env.check(max(widths) <= 80, f"the tables fit 80 columns, a host of 4 included ({max(widths)})")

code, obj, err = status_json()
print(json.dumps(obj, indent=1)[:3000] if obj else err)
env.check(code == 0 and obj is not None, f"status --json exits 0 with one JSON object ({code})")
obj = obj or {"shards": [], "workers": []}
env.check(sorted(obj) == ["job", "shards", "workers"] and obj.get("job") == "psctl-status",
          f"the object holds job, shards and workers ({sorted(obj)})")
shards = obj["shards"]
env.check([s.get("shard") for s in shards] == [0, 1] and all(s.get("answered") for s in shards),
          "both shards answered")
for s in shards:
    keys_snake(s, f"shard {s.get('shard')}")
    figures_numbers(s, f"shard {s.get('shard')}",
                    ("endpoint", "mode", "error", "answered", "tables"))
    env.check(s.get("tables") == [], f"shard {s.get('shard')}: a dense model has no tables "
              f"({s.get('tables')})")
env.check(all(s.get("live_workers") == 2 and s.get("workers") == 3 and s.get("version", 0) > 0
              and s.get("mode") == "sync" and s.get("error") is None for s in shards),
          "each shard: version > 0, 2 of 3 live, sync, no error")
env.check(sum(s.get("params", 0) for s in shards) == 650 and
          shards[0].get("key_hi") == shards[1].get("key_lo") if len(shards) == 2 else False,
          "the shards split the 650 params")
w = by_rank(obj)
for r, row in w.items():
    keys_snake(row, f"rank {r}")
    figures_numbers(row, f"rank {r}", ("state", "host"))
env.check(sorted(w) == [0, 1, 2], f"one worker per rank ({sorted(w)})")
env.check(w.get(1, {}).get("state") == "evicted" and w.get(1, {}).get("evictions", 0) >= 1,
          f"rank 1 is evicted, its evictions counted ({w.get(1)})")
env.check((w.get(1, {}).get("last_seen_ms") or 0) >= TIMEOUT_MS,
          "rank 1 was last seen at least timeout_ms ago")
live = [w.get(r, {}) for r in (0, 2)]
env.check(all(x.get("state") == "live" and x.get("clock", 0) > 0 and x.get("pushes", 0) > 0
              for x in live), "ranks 0 and 2 are live with clock > 0 and pushes > 0")
# every step pushes to both shards: merged pushes are about twice the clock
env.check(all(x.get("pushes", 0) > x.get("clock", 0) and x.get("shards") == 2 for x in live),
          "pushes are summed over both shards")
env.check(all(x.get("host") == HOST for x in w.values()),
          f"every rank names its worker's host, {HOST} ({[x.get('host') for x in w.values()]})")
env.check(all(isinstance(x.get("loss"), float) and math.isfinite(x["loss"]) and
              isinstance(x.get("samples_per_s"), (int, float)) and x["samples_per_s"] > 0
              for x in live), "ranks 0 and 2 report a finite loss and samples/s > 0")
env.check(all("loss" in x and "samples_per_s" in x for x in w.values()),
          "every rank has loss and samples_per_s (null until its worker says)")

code, one, _ = status_json("--shard", "1")
env.check(code == 0 and one is not None and [s["shard"] for s in one["shards"]] == [1] and
          all(x["shards"] == 1 for x in one["workers"]),
          "status --shard 1 --json asks shard 1 alone")

# ---- top on a pipe ----------------------------------------------------------
code, out, err = psctl("--interval", "200", "--count", "2", "top")
print(out)
tables = out.split("\n\n")
env.check(code == 0 and err == "", f"top --count 2 exits 0, nothing on stderr (exit {code})")
env.check(out.count("shard  endpoint") == 2 and out.count("rank  state") == 2,
          "top --count 2 prints two pairs of tables")
env.check("\033[" not in out, "top on a pipe writes no terminal codes")
env.check(len(tables) == 4 and tables[2].startswith("shard"),
          f"a blank line between the refreshes ({len(tables)} blocks)")
code, out, err = psctl("--interval", "200", "--count", "2", "--json", "top")
lines = out.splitlines()
try:
    objs = [json.loads(l, parse_constant=no_nan) for l in lines]
except ValueError:
    objs = []
env.check(code == 0 and len(objs) == 2 and all(len(o["workers"]) == 3 for o in objs),
          f"top --json --count 2 prints two JSON lines ({len(lines)} lines)")

# ---- a shard that stops answering -------------------------------------------
os.kill(psds[1].p.pid, signal.SIGSTOP)
code, out, err = psctl("--interval", "200", "--count", "2", "--timeout-ms", "300", "top")
print(out, err)
missing = re.findall(r"^1\s+tcp://\S+\s+no answer within 300 ms$", out, re.M)
env.check(len(missing) == 2 and out.count("shard  endpoint") == 2,
          f"top shows shard 1 as not answering in both refreshes ({len(missing)})")
env.check(len(re.findall(r"^0\s+tcp://\S+\s+\d+\s+2/3\s", out, re.M)) == 2,
          "... and shard 0's figures in both")
env.check(code == 1 and err == "", f"top goes on to its count and exits 1 (exit {code})")
code, out, err = psctl("--timeout-ms", "300", "status")
env.check(code == 1 and len(err.splitlines()) == 1 and
          re.match(r"psctl: shard 1 at tcp://\S+: no answer within 300 ms$", err) is not None,
          f"status names the silent shard on stderr in one line, exit 1 ({err.strip()})")
env.check(re.search(r"^0\s+tcp://", out, re.M) is not None and "rank  state" in out,
          "status still prints shard 0 and the ranks it knows")
os.kill(psds[1].p.pid, signal.SIGCONT)

# ---- the end ----------------------------------------------------------------
for s in psds:
    s.p.send_signal(signal.SIGTERM)
codes = [s.wait(20) for s in psds]
wcodes = [workers[r].wait(30) for r in (0, 2)]
for p in psds + workers:
    p.show()
env.check(codes == [0, 0], f"both shards stop on SIGTERM (exit {codes})")
env.check(all(c is not None for c in wcodes), f"ranks 0 and 2 end with psd (exit {wcodes})")
stop_procs(env)
no_leftovers(env, path)
env.finish()
