"""test_metrics.py — psd's /metrics as Prometheus sees it. A real
prometheus scrapes psd every second while two workers train; its HTTP API
then gives psd_updates_total and each rank's loss, which must agree with
the job's own figures (psd's stop line, the workers' summaries), and
`promtool check metrics` accepts a scrape (`promtool check config` the
shipped deploy/prometheus/psd.yml). psd runs under a test NOTIFY_SOCKET
too: its STATUS= says the updates a second while the job trains, and 0
once it is done. Needs the Debian package prometheus (deploy/setup.sh
--tests installs it): without it the test fails and says so."""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import Env, Proc, free_port, job_yaml, no_leftovers, stop_procs, wait_for, write

env = Env()
prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
if prometheus is None or promtool is None:
    print("FAIL: prometheus and promtool are not installed; run deploy/setup.sh --tests "
          "(it installs the Debian package prometheus)")
    sys.exit(1)


def http_get(url, timeout_s=5):
    """(status, content type, body text) of a GET; status 0 when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except (urllib.error.URLError, OSError) as e:
        code = getattr(e, "code", 0)
        return code, "", ""


def promtool_accepts(text, what):
    """promtool check metrics on a scrape: exit 0 and no lint problem."""
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    env.check(p.returncode == 0,
              f"{what}: promtool check metrics accepts the scrape (exit {p.returncode}) "
              f"{(p.stdout + p.stderr).strip()[:500]}")


def query(prom_port, q):
    """The result list of an instant query of Prometheus' HTTP API ([] on failure)."""
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    status, _, body = http_get(url)
    if status != 200:
        return []
    data = json.loads(body)
    return data["data"]["result"] if data.get("status") == "success" else []


def one_value(prom_port, q):
    """The value of a query that gives one series, or None."""
    r = query(prom_port, q)
    return float(r[0]["value"][1]) if len(r) == 1 else None


metrics_port, prom_port = free_port(), free_port()
# breast_cancer, 2 workers, sync: 455 rows, 228 a worker, 15 batches of 16 an
# epoch; 60 epochs last a few seconds, so scrapes land while it trains
job = write(env, "metrics.yaml",
            job_yaml(env, "metrics", epochs=60, batch_size=16,
                     extra=f"metrics: {{listen: 127.0.0.1:{metrics_port}}}\n"))
metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

# psd's sd_notify datagrams, collected as they come (as systemd would)
notify_path = os.path.join(env.tmp, "notify.sock")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
notify.settimeout(0.2)
statuses = []  # (time, STATUS= text)


def collect():
    while notify.fileno() >= 0:
        try:
            data = notify.recv(4096).decode()
        except socket.timeout:
            continue
        except OSError:
            return
        for line in data.split("\n"):
            if line.startswith("STATUS="):
                statuses.append((time.monotonic(), line[len("STATUS="):]))


collector = threading.Thread(target=collect, daemon=True)
collector.start()

os.environ["NOTIFY_SOCKET"] = notify_path  # psd's only: Proc passes the environment on
psd = Proc(env, "psd", [env.prog("psd"), "--config", job])
del os.environ["NOTIFY_SOCKET"]
env.check(wait_for(lambda: http_get(metrics_url)[0] == 200, 30, "psd's /metrics"),
          "psd serves /metrics on metrics.listen")
status, ctype, text = http_get(metrics_url)
env.check(ctype == "text/plain; version=0.0.4; charset=utf-8",
          f"/metrics is Prometheus text 0.0.4 ({ctype!r})")
env.check("psd_updates_total{shard=\"0\"} 0\n" in text, "before any worker: 0 updates")
promtool_accepts(text, "before training")
shipped = os.path.join(env.source, "deploy", "prometheus", "psd.yml")
p = subprocess.run([promtool, "check", "config", shipped], capture_output=True, text=True,
                   timeout=60)
env.check(p.returncode == 0, f"promtool check config accepts deploy/prometheus/psd.yml "
          f"{(p.stdout + p.stderr).strip()[-300:]}")
env.check(http_get(f"http://127.0.0.1:{metrics_port}/other")[0] == 404, "another path: 404")

# a real Prometheus, scraping psd every second
config = write(env, "prometheus.yml", f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: psd
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ['127.0.0.1:{metrics_port}']
""")
prom = Proc(env, "prometheus", [prometheus, f"--config.file={config}",
                                f"--storage.tsdb.path={os.path.join(env.tmp, 'tsdb')}",
                                f"--web.listen-address=127.0.0.1:{prom_port}",
                                "--log.level=warn"])
env.check(wait_for(lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200, 60,
                   "prometheus to be ready"), "prometheus starts")
env.check(wait_for(lambda: one_value(prom_port, 'up{job="psd"}') == 1.0, 30,
                   "prometheus' first scrape of psd"), "prometheus scrapes psd (up == 1)")

# the job: two workers, each with its summary
summaries = [os.path.join(env.tmp, f"w{r}.json") for r in range(2)]
workers = [Proc(env, f"w{r}", [env.prog("psworker"), "--config", job, "--rank", str(r),
                               "--summary-json", summaries[r]]) for r in range(2)]
codes = [w.wait(240) for w in workers]
env.check(codes == [0, 0], f"both workers finish (exit {codes})")
if codes != [0, 0]:
    for w in workers:
        w.show()
runs = []
for path in summaries:
    try:
        with open(path) as f:
            runs.append(json.load(f))
    except (OSError, ValueError):
        runs.append(None)
env.check(all(runs), "both workers wrote their summary")
version = runs[0]["version"] if runs[0] else -1

# Prometheus' view once a scrape after the job landed: the updates are the
# final version (sync: one update a round), and psd stays up for it
env.check(wait_for(lambda: one_value(prom_port, "psd_updates_total") == version, 30,
                   f"prometheus to see psd_updates_total {version}"),
          f"prometheus: psd_updates_total == the job's final version {version}")
env.check((one_value(prom_port, "changes(psd_updates_total[10m])") or 0) >= 1,
          "prometheus saw psd_updates_total change while the job ran")
env.check(one_value(prom_port, 'psd_workers{state="left"}') == 2.0,
          "prometheus: both ranks have left")
# each rank's loss: what its worker said on its last heartbeat, the mean loss
# of its epoch so far; its DONE heartbeat comes after the last epoch ended,
# so it is that epoch's mean, the figure the summary holds
# (train_loss_last_epoch). The same double goes the whole way (heartbeat,
# /metrics with 15 digits, Prometheus' float64), so 1e-6 relative is room
# enough for the text's rounding.
for r in range(2):
    got = one_value(prom_port, f'psd_worker_loss{{rank="{r}"}}')
    want = runs[r]["metrics"]["train_loss_last_epoch"] if runs[r] else None
    env.check(got is not None and want is not None and math.isfinite(got) and
              abs(got - want) <= 1e-6 * abs(want) + 1e-9,
              f"prometheus: rank {r}'s loss {got} is its worker's last epoch loss {want}")
    sps = one_value(prom_port, f'psd_worker_samples_per_second{{rank="{r}"}}')
    env.check(sps is not None and sps > 0, f"prometheus: rank {r} reported {sps} samples/s")
    pushes = one_value(prom_port, f'psd_worker_pushes_total{{rank="{r}"}}')
    env.check(pushes == 60 * 15, f"prometheus: rank {r} pushed {pushes} times (60 x 15)")

# a scrape with every family filled in: promtool still accepts it
status, _, text = http_get(metrics_url)
promtool_accepts(text, "after training")

# systemd's view: STATUS= with the version, live workers and updates a
# second since the one before; a positive rate once the job trained, 0
# again a second after it was done
status_re = re.compile(r"shard 0/1: version (\d+), (\d+) of 2 workers live, ([0-9.]+) updates/s$")


def status_final_idle():
    m = status_re.match(statuses[-1][1]) if statuses else None
    return m is not None and int(m.group(1)) == version and float(m.group(3)) == 0.0


env.check(wait_for(status_final_idle, 5, "STATUS= of the final version with 0 updates/s"),
          f"STATUS= says version {version} and falls to 0.0 updates/s after the job")
parsed = [status_re.match(t) for _, t in statuses]
env.check(bool(parsed) and all(parsed), f"every STATUS= names version, live workers and updates/s "
          f"({[t for _, t in statuses]})")
env.check(bool(parsed) and parsed[0] is not None and
          parsed[0].group(0).startswith("shard 0/1: version 0, 0 of 2"),
          "the first STATUS= (READY=1) says version 0, 0 of 2 workers live")
rates = [float(m.group(3)) for m in parsed if m]
env.check(any(r > 0 for r in rates), f"STATUS= gives a positive updates/s for the job ({rates})")

# psd's own summary when it stops agrees with what Prometheus holds
psd.p.send_signal(signal.SIGTERM)
env.check(psd.wait(30) == 0, "psd stops on SIGTERM")
m = re.search(r"stopped: version (\d+), (\d+) pushes", psd.text())
env.check(m is not None and int(m.group(1)) == version,
          f"psd's stop line says version {version}")
if m:
    env.check(one_value(prom_port, "psd_pushes_total") == float(m.group(2)),
              f"prometheus: psd_pushes_total == psd's {m.group(2)} pushes")
if env.failures:
    psd.show()
    prom.show()
notify.close()
stop_procs(env)  # prometheus, by its PID
no_leftovers(env, job)
env.finish()
