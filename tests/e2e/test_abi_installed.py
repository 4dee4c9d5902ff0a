"""test_abi_installed.py — libpsworker as a user gets it: `cmake --install`
into a scratch prefix puts the three public headers under include/psd and
libpsworker.so.1 (soname) under lib; docs/library.md's example, taken from
the page's code block (which must be worker/example_fit_line.c, less its
opening comment, so page, program and test cannot drift), compiles with
`cc -I PREFIX/include ... -L PREFIX/lib -lpsworker`, records
libpsworker.so.1 as what it needs, and fits y = 3x + 1 against a real psd.
A second small program opens its client with ps_client_open_job (rank from
$PSD_RANK) and checks the version calls and a wrong θ length."""
import os
import re
import signal
import subprocess

from harness import Env, build_option, free_port, run, write

env = Env()
build = os.path.dirname(env.bin)


def example_from_docs():
    """The C block under docs/library.md's "## An example" heading."""
    text = open(os.path.join(env.source, "docs/library.md")).read()
    part = text.split("\n## An example\n", 1)
    if len(part) < 2:
        return None
    m = re.search(r"^```c\n(.*?)^```$", part[1], re.S | re.M)
    return m.group(1) if m else None


def line_job(port):
    text = open(os.path.join(env.source, "config", "examples", "line.yaml")).read()
    text = text.replace("tcp://127.0.0.1:7071", f"tcp://127.0.0.1:{port}")
    text = text.replace("data/line.csv", os.path.join(env.data, "line.csv"))
    return write(env, f"line-{port}.yaml", text)


def with_psd(job, cmd, renv, timeout_s=60):
    """Runs cmd while a psd serves job; psd is then stopped (SIGTERM, killed
    by PID after 10 s). Returns run's (code, out, err)."""
    psd = subprocess.Popen([env.prog("psd"), "--config", job], stderr=subprocess.PIPE, text=True)
    try:
        return run(cmd, timeout_s, env=renv)
    finally:
        psd.send_signal(signal.SIGTERM)
        try:
            psd.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            psd.kill()
            psd.communicate()


docs_src = example_from_docs()
env.check(docs_src is not None, "docs/library.md has the example in a ```c block")
file_src = open(os.path.join(env.source, "worker", "example_fit_line.c")).read()
file_body = re.sub(r"\A/\*.*?\*/\n", "", file_src, count=1, flags=re.S)
env.check(docs_src == file_body,
          "the page's example is worker/example_fit_line.c (less its opening comment)")

prefix = os.path.join(env.tmp, "prefix")
code, out, err = run(["cmake", "--install", build, "--prefix", prefix], 120)
env.check(code == 0, f"cmake --install into a scratch prefix {err.strip()}")
inc = os.path.join(prefix, "include")
for h in ("psworker.h", "errors.h", "version.h"):
    env.check(os.path.isfile(os.path.join(inc, "psd", h)), f"include/psd/{h} installed")
libdir = None
for root, _, files in os.walk(prefix):
    if "libpsworker.so" in files:
        libdir = root
env.check(libdir is not None, "libpsworker.so installed")
if libdir is None or docs_src is None:
    env.finish()
env.check(os.path.realpath(os.path.join(libdir, "libpsworker.so")) ==
          os.path.realpath(os.path.join(libdir, "libpsworker.so.1")),
          "libpsworker.so links to libpsworker.so.1")

san = build_option(env, "PS_SANITIZER")
extra = [f"-fsanitize={san}"] if san else []
renv = dict(os.environ, LD_LIBRARY_PATH=libdir)


def compile_(name, src):
    c = write(env, name + ".c", src)
    exe = os.path.join(env.tmp, name)
    code, _, err = run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", inc, c, "-o", exe,
                        "-L", libdir, "-lpsworker"] + extra, 60)
    env.check(code == 0, f"{name} compiles against the installed library {err.strip()}")
    if code != 0:
        return None
    _, dyn, _ = run(["readelf", "-d", exe], 10)
    env.check("Shared library: [libpsworker.so.1]" in dyn, f"{name} needs libpsworker.so.1")
    return exe


exe = compile_("fit_line", docs_src)
if exe:
    port = free_port()
    code, out, err = with_psd(line_job(port), [exe, f"tcp://127.0.0.1:{port}"], renv)
    print(out, err)
    env.check(code == 0, "the example exits 0")
    m = re.fullmatch(r"w = (\S+), b = (\S+)\n", out)
    env.check(m is not None and abs(float(m.group(1)) - 3) < 0.01 and
              abs(float(m.group(2)) - 1) < 0.01, f"the example fits w ~ 3, b ~ 1 ({out.strip()})")

OPEN_JOB = r"""
#include <psd/psworker.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    if (strcmp(ps_version(), PSD_VERSION_STRING) != 0 || ps_version_number() != PSD_VERSION_NUMBER)
        return 3;
    ps_client *c;
    char err[512];
    int rc = ps_client_open_job(argv[1], -1, &c, err, sizeof err);
    if (rc != 0) {
        printf("open_job: %s: %s\n", ps_err_name(rc), err);
        return 1;
    }
    float theta[3];
    int bad = ps_client_pull(c, 0, theta, 3, NULL);
    printf("rank %d, %llu params, wrong length: %s: %s\n", ps_client_rank(c),
           (unsigned long long)ps_client_num_params(c), ps_err_name(bad), ps_client_last_error(c));
    rc = ps_client_pull(c, 0, theta, 2, NULL);
    printf("pull: %s\n", ps_err_name(rc));
    ps_client_close(&c);
    return rc == 0 ? 0 : 1;
}
"""
exe = compile_("open_job", OPEN_JOB)
if exe:
    port = free_port()
    code, out, err = with_psd(line_job(port), [exe, line_job(port)], dict(renv, PSD_RANK="0"))
    print(out, err)
    env.check(code == 0, f"open_job exits 0 (got {code})")
    env.check("rank 0, 2 params, wrong length: PS_EINVAL: pull: theta holds 3 floats, θ has 2"
              in out, "ps_client_open_job takes the rank from $PSD_RANK; a wrong length is "
              "PS_EINVAL with its sentence")
    env.check("pull: PS_OK" in out, "the pull with θ's length works")
    code, out, err = run([exe, line_job(free_port())], 30, env=dict(renv, PSD_RANK="x1"))
    env.check(code == 1 and "PS_EINVAL" in out and "PSD_RANK=x1" in out,
              f"rank -1 reads $PSD_RANK ({out.strip()})")
    bad = write(env, "bad.yaml", "job: x\nmode: nonsense\n")
    code, out, err = run([exe, bad], 30, env=renv)
    env.check(code == 1 and "PS_ECONFIG" in out and bad in out,
              f"a bad job file is PS_ECONFIG naming the file ({out.strip()})")
env.finish()
