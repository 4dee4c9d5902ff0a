"""test_messages.py — what psd and psbench say when they are given something
that cannot work, each in one line that names what is wrong:
- servers: [tcp://no-such-host.invalid:P]: the host name cannot be
  resolved (psd used to bind every interface for it), exit 1; 999.1.1.1:
  no address or interface of this machine, beside ZeroMQ's "No such
  device" (both in a network namespace of their own: no lookup leaves);
- security.curve with an empty authorized_workers folder: psd refuses to
  start (no worker could ever join), exit 2;
- metrics.listen with port 0, staleness: -1, local_steps: 4294967296: the
  bound that was broken, exit 2;
- psbench --only NOSUCHGROUP: refused with the known groups, exit 2.
Every run is bounded by a timeout."""
import os

from harness import Env, free_port, job_yaml, run, write

env = Env()


def psd(name, text, timeout_s=30, prefix=()):
    """(exit code, stderr lines, job path) of psd on a job text."""
    path = write(env, f"{name}.yaml", text)
    code, _, err = run([*prefix, env.prog("psd"), "--config", path], timeout_s)
    return code, err.strip().splitlines(), path


def with_servers(text, servers):
    return "\n".join(f"servers: [{servers}]" if ln.startswith("servers:") else ln
                     for ln in text.splitlines()) + "\n"


def one_line(name, code, lines, want_code, *parts):
    line = lines[-1] if lines else ""
    env.check(code == want_code, f"{name}: psd exits {want_code} (exit {code}: {lines})")
    for part in parts:
        env.check(part in line, f"{name}: its last line says {part!r} ({line!r})")


# 1. a host name that does not resolve, and a host that is no address: in a
#    network namespace of their own, so that no lookup leaves this machine
port = free_port()
NETNS = ("unshare", "-Urn")
if run([*NETNS, "/bin/true"], 30)[0] != 0:
    print("skipped the unresolvable host: no network namespace here (unshare -Urn)")
else:
    code, lines, _ = psd("unresolvable", with_servers(job_yaml(env, "unresolvable"),
                                                      f"tcp://no-such-host.invalid:{port}"),
                         prefix=NETNS)
    one_line("unresolvable host", code, lines, 1,
             f"psd: cannot bind tcp://no-such-host.invalid:{port}: the host name "
             "no-such-host.invalid cannot be resolved (")
    env.check(not any("listening on" in ln for ln in lines),
              "unresolvable host: psd does not listen on every interface instead")
    code, lines, _ = psd("no-address", with_servers(job_yaml(env, "no-address"),
                                                    f"tcp://999.1.1.1:{port}"), prefix=NETNS)
    one_line("no address", code, lines, 1, f"psd: cannot bind tcp://999.1.1.1:{port}: ",
             "(the host is not an address or network interface of this machine)")

# 2. CURVE with nobody authorized
keys = os.path.join(env.tmp, "keys")
os.makedirs(os.path.join(keys, "workers"))
code, _, err = run([env.prog("psctl"), "keygen", os.path.join(keys, "psd")], 30)
env.check(code == 0, f"psctl keygen exits 0 ({err.strip()})")
curve = (f"security:\n  curve:\n"
         f"    server_secret_key: {keys}/psd.key_secret\n"
         f"    server_public_key: {keys}/psd.key\n"
         f"    authorized_workers: {keys}/workers/\n")
code, lines, path = psd("nobody", job_yaml(env, "nobody", extra=curve))
one_line("empty authorized_workers", code, lines, 2,
         f"security.curve.authorized_workers: {keys}/workers/ holds no worker key",
         "no worker could ever join")
env.check(not any("listening on" in ln for ln in lines),
          "empty authorized_workers: psd does not start")

# 3. numbers and ports out of their range
for name, extra, parts in (
        ("metrics-port-0", 'metrics: {listen: "127.0.0.1:0"}\n',
         ('metrics.listen: "127.0.0.1:0" has port 0', "give a port from 1 to 65535")),
        ("staleness-negative", "staleness: -1\n", ("staleness: must not be negative, got -1",)),
        ("local-steps-huge", "", ("training.local_steps: must be at most 4294967295, got "
                                  "4294967296",))):
    text = job_yaml(env, name, mode="ssp" if "staleness" in name else "sync", extra=extra)
    if name == "local-steps-huge":
        text = text.replace("training:\n", "training:\n  local_steps: 4294967296\n")
    code, lines, _ = psd(name, text)
    one_line(name, code, lines, 2, *parts)
    env.check(len(lines) == 1, f"{name}: one line ({lines})")

# 4. psbench --only naming no group
code, out, err = run([env.prog("psbench"), "--only", "NOSUCHGROUP"], 30)
env.check(code == 2 and out == "", f"psbench --only NOSUCHGROUP exits 2 (exit {code})")
env.check(err.strip() == 'psbench: --only: "NOSUCHGROUP" names no group: codec, apply, pushpull, '
          "curve, sync, rss, pulls, scrape, sparse, train or swarm (or a figure's name that starts "
          "with one, such as pushpull_1k_tcp)", f"psbench names the known groups ({err.strip()!r})")

env.finish()
