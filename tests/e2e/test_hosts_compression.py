"""test_hosts_compression.py — compressed jobs across hosts (tests/hosts/bed.py:
psd and each worker in a network namespace of its own, rate-limited links):
a sync job with int8 pushes and fp16 pulls and an async job with top-k 10%
pushes (error feedback) and int8 pulls train the digits MLP (19 210
floats) to within a few points of the same job uncompressed on loopback,
and psd's link carries what the codecs promise: in, about a quarter (int8)
or a tenth (top-k) of float32; out, a half (fp16) or a quarter (int8).
Small and fast, so it runs under the sanitizers too. Needs root: exits 77
(skipped) without."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
from harness import Env, free_port, no_leftovers, psrun, write  # noqa: E402
import bedtest  # noqa: E402
import jobs  # noqa: E402

MLP_FLOATS = 64 * 256 + 256 + 256 * 10 + 10
EPOCHS = 4

env = Env()
b = bedtest.bed_or_skip(jobs.hosts_for(1, 2), rate="200mbit")
try:
    cases = (
        # mode, compression, bytes in and out per float32 byte (upper bounds), accuracy tolerance
        ("sync", "{push: int8, pull: fp16}", 0.30, 0.55, 0.03),
        ("async", "{push: topk, topk_ratio: 0.1, pull: int8}", 0.25, 0.30, 0.05),
    )
    for mode, comp, in_share, out_share, tolerance in cases:
        lo = write(env, f"{mode}-loopback.yaml", bedtest.digits_job(
            env, f"compress-{mode}", bedtest.loopback_servers(free_port), mode=mode,
            epochs=EPOCHS, model="mlp"))
        code, summary, _ = psrun(env, lo, timeout_s=120)
        env.check(code == 0 and summary is not None, f"{mode}: the uncompressed loopback run "
                  "succeeds")
        acc_lo = summary["test_metric"]["value"] if summary else -1.0
        no_leftovers(env, lo)

        path = write(env, f"{mode}-bed.yaml", bedtest.digits_job(
            env, f"compress-{mode}", bedtest.bed_servers(b), mode=mode, epochs=EPOCHS,
            model="mlp", extra=f"compression: {comp}\n"))
        j = jobs.BedJob(b, env.bin, path, shards=1, workers=2)
        j.start_servers()
        before = j.psd_bytes()
        for r in range(2):
            j.start_worker(r)
        codes = j.wait(120)
        print(f"{mode} compressed {comp} on the bed: {codes} in {j.wall_s:.1f} s")
        env.check(all(c == 0 for c in codes.values()), f"{mode}: every process exits 0 ({codes})")
        s = j.summary(0)
        env.check(s is not None, f"{mode}: rank 0 wrote its summary")
        if s is not None:
            acc = s["test_metric"]["value"]
            env.check(acc >= acc_lo - tolerance,
                      f"{mode}: test accuracy {acc:.4f} compressed on the bed, {acc_lo:.4f} "
                      f"uncompressed on loopback (within {tolerance})")
            rx, tx = j.psd_bytes()
            rx, tx = rx - before[0], tx - before[1]
            # both workers' pushes, or pulls of θ (one per push), in float32
            f32 = MLP_FLOATS * 4 * s["updates"] * 2
            env.check(0 < rx <= in_share * f32,
                      f"{mode}: psd took in {rx / 1e6:.2f} MB, at most {in_share} of the "
                      f"{f32 / 1e6:.2f} MB float32 pushes would take")
            env.check(0 < tx <= out_share * f32,
                      f"{mode}: psd sent {tx / 1e6:.2f} MB, at most {out_share} of the "
                      f"{f32 / 1e6:.2f} MB float32 pulls would take")
        bedtest.check_no_shared_memory(env, j)
        if env.failures:
            bedtest.show_tail(j)
finally:
    b.down()
env.finish()
