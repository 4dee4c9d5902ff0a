#!/usr/bin/python3
"""check_symbols.py — libpsworker.so exports its public API and nothing else.

  check_symbols.py --lib LIB --source DIR   check the built library LIB
  check_symbols.py --self-test              check the checker: a library
                                            with an extra name, a missing
                                            name or a wrong soname must fail

The public API is the PS_EXTERN declarations of the public headers
(worker/psworker.h, worker/psd_errors.h, worker/psd_version.h), parsed here.
Checks: every name `nm -D --defined-only LIB` lists is declared there; every
declared name is exported; the version script worker/psworker.map lists
exactly the declared names; the soname (readelf -d) is libpsworker.so.<major>,
the major of psd_version.h. One line per problem; exit 0 when all hold, 1
otherwise, 2 on a usage error. Python 3 standard library only."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HEADERS = ("worker/psworker.h", "worker/psd_errors.h", "worker/psd_version.h")
MAP = "worker/psworker.map"
# a declaration marked for export: PS_EXTERN <type> name(  (across lines)
DECL = re.compile(r"\bPS_EXTERN\b[^;{}()]*?\b(\w+)\s*\(", re.S)
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
MAJOR = re.compile(r"^#define PSD_VERSION_MAJOR +(\d+)\s*$", re.M)


def declared(texts):
    """The names the headers' texts declare PS_EXTERN (macros defining
    PS_EXTERN itself are not declarations)."""
    names = set()
    for text in texts:
        text = COMMENT.sub(" ", text)
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        names.update(DECL.findall(text))
    return names


def map_names(text):
    """The names the version script's global: section lists."""
    text = COMMENT.sub(" ", text)
    m = re.search(r"global\s*:(.*?)(?:local\s*:|\})", text, re.S)
    if m is None:
        return None
    return {n.strip() for n in m.group(1).split(";") if n.strip()}


def exported(lib):
    """The dynamic symbols LIB defines (nm -D --defined-only)."""
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names


def soname(lib):
    out = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else None


def problems(header_texts, map_text, exports, so):
    """Every problem found, as sentences."""
    found = []
    api = declared(header_texts)
    if not api:
        return ["the public headers declare nothing PS_EXTERN"]
    for name in sorted(exports - api):
        found.append(f"{name}: exported by the library, not declared PS_EXTERN in a public header")
    for name in sorted(api - exports):
        found.append(f"{name}: declared PS_EXTERN, not exported by the library")
    listed = map_names(map_text)
    if listed is None:
        found.append(f"{MAP}: no global: section")
    else:
        for name in sorted(listed - api):
            found.append(f"{name}: in {MAP}, not declared PS_EXTERN in a public header")
        for name in sorted(api - listed):
            found.append(f"{name}: declared PS_EXTERN, missing from {MAP}")
    m = None
    for text in header_texts:
        m = m or MAJOR.search(text)
    want = f"libpsworker.so.{m.group(1)}" if m else None
    if want is None:
        found.append("no PSD_VERSION_MAJOR in the public headers")
    elif so != want:
        found.append(f"soname is {so}, not {want}")
    return found


def check(lib, source):
    texts = [open(os.path.join(source, h)).read() for h in HEADERS]
    map_text = open(os.path.join(source, MAP)).read()
    exports = exported(lib)
    found = problems(texts, map_text, exports, soname(lib))
    for p in found:
        print(f"{lib}: {p}")
    api = declared(texts)
    print(f"check_symbols: {len(exports)} names exported, {len(api)} declared, "
          f"{len(found)} problems")
    return 1 if found else 0


def self_test():
    """The checker on a library built here: good, with an extra exported
    name, with a declared name missing, with a wrong soname."""
    failures = 0

    def expect(cond, what):
        nonlocal failures
        print(("ok: " if cond else "FAIL: ") + what)
        failures += 0 if cond else 1

    header = ("#define PSD_VERSION_MAJOR 3\n"
              "#define PS_EXTERN __attribute__((visibility(\"default\")))\n"
              "/* PS_EXTERN int ps_commented(void); */\n"
              "PS_EXTERN int ps_a(void);\nPS_EXTERN const char *\n  ps_b(int x);\n")
    good_map = "{\n  global:\n    ps_a;\n    ps_b;\n  local:\n    *;\n};\n"
    expect(declared([header]) == {"ps_a", "ps_b"}, "declarations parsed, comments skipped")
    with tempfile.TemporaryDirectory() as d:
        def build(src, soname_, script):
            c, m, so = (os.path.join(d, n) for n in ("t.c", "t.map", "t.so"))
            open(c, "w").write(src)
            open(m, "w").write(script)
            r = subprocess.run(["cc", "-shared", "-fPIC", "-o", so, c,
                                f"-Wl,-soname,{soname_}", f"-Wl,--version-script={m}"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr)
                return None
            return problems([header], script, exported(so), soname(so))

        body = "int ps_a(void) { return 1; }\nconst char *ps_b(int x) { return x ? \"\" : 0; }\n"
        got = build(body, "libpsworker.so.3", good_map)
        expect(got == [], f"a library exporting exactly the API passes ({got})")
        extra_map = good_map.replace("ps_b;", "ps_b;\n    ps_internal;")
        got = build(body + "int ps_internal(void) { return 2; }\n", "libpsworker.so.3", extra_map)
        expect(got is not None and any(p.startswith("ps_internal: exported") for p in got),
               f"an extra exported name fails ({got})")
        got = build("int ps_a(void) { return 1; }\n", "libpsworker.so.3",
                    good_map.replace("ps_b;", ""))
        expect(got is not None and any(p.startswith("ps_b: declared PS_EXTERN, not exported")
                                       for p in got), f"a missing name fails ({got})")
        got = build(body, "libpsworker.so.0", good_map)
        expect(got is not None and any("soname is libpsworker.so.0" in p for p in got),
               f"a wrong soname fails ({got})")
    return 1 if failures else 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib")
    p.add_argument("--source", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    p.add_argument("--self-test", action="store_true")
    a = p.parse_args(argv)
    if a.self_test:
        return self_test()
    if not a.lib:
        p.print_usage(sys.stderr)
        return 2
    return check(a.lib, a.source)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
