#!/usr/bin/python3
"""check_docs.py — the reading path has no dead ends: every relative link
between the project's Markdown files reaches a file that exists and, with
an #anchor, a heading of that page; every page of docs/ (or other .md file)
that the code cites exists, with the section it names; every file of the
repository a page names in a code span (`server/engine.c`) exists; and no
code cites the design notes users never get (the old "DESIGN" +
section-sign form).

  check_docs.py --source DIR   check the tree at DIR (default: this repository)
  check_docs.py --self-test    check the checker: a tree with every kind of
                               fault must fail on each, a good one must pass,
                               and a tree with nothing to check must fail

Anchors follow GitHub's rules: a heading's text, lower case, with what is
not a letter, digit, '_', '-' or space dropped and each space made '-';
the second heading with the same slug gets '-1', the third '-2'.

Prints one line per problem, `file:line: what is wrong`, then how many links,
citations and file names it checked. Exit 0 when all are good, 1 when one is not or
when nothing was checked at all (a check that ran nothing proves nothing),
2 on a usage error. Python 3 standard library only."""
import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
import urllib.parse

# Files whose comments may cite a page; Markdown files are read for links.
CODE_SUFFIXES = (".c", ".h", ".proto", ".py", ".cmake", ".sh", ".yaml", ".yml", ".in")
CODE_NAMES = ("CMakeLists.txt",)
# Folders never read when the tree is walked (no git): build output.
SKIP_DIRS = re.compile(r"^(\..*|build.*|__pycache__|node_modules)$")
# This file, wherever the tree checked is: its self-test writes broken links
# on purpose, and it must name the pattern it forbids.
SELF = os.path.realpath(__file__)
SELF_REL = "tests/docs/" + os.path.basename(__file__)

# The forbidden citation, spelled so that this file does not hold it.
OLD_CITATION = re.compile("DESIGN" + r"\s*\u00a7\s*\d*(?:\s*(?:,|and)\s*\u00a7\s*\d+)*")
# A page cited in code: a path ending in .md, optionally with #anchor.
CODE_CITATION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]*)?")
# Markdown: an inline link or image target, `](target "title")`.
INLINE_LINK = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
# Markdown: a reference definition, `[name]: target`.
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Markdown: a code span that is a path inside the repository, checked when
# its first folder holds tracked files (`build/bin/psd` is not checked);
# names with <, * or spaces are patterns, not files.
CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
REPO_PATH = re.compile(r"^([\w.-]+)/[\w./@+-]*$")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ID = re.compile(r"<a\s+[^>]*?(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# ---- GitHub's heading anchors ----

def heading_text(md):
    """The text GitHub renders for a heading's Markdown (what its slug is
    made from): links become their text, code spans their code, emphasis
    markers and HTML tags go."""
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", md)
    s = re.sub(r"!?\[([^\]]*)\]\[[^\]]*\]", r"\1", s)
    s = re.sub(r"<[^>]+>", "", s)
    parts = re.split(r"(`+[^`]*`+)", s)  # code spans keep their text as is
    out = []
    for p in parts:
        if p.startswith("`"):
            out.append(p.strip("`"))
        else:
            p = re.sub(r"(\*\*|__)(.+?)\1", r"\2", p)
            p = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", p)
            p = re.sub(r"(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])", r"\1", p)
            p = p.replace("\\", "")
            out.append(p)
    return "".join(out).strip()


def slug(text):
    """GitHub's anchor of a heading whose rendered text is text (before
    duplicates are numbered)."""
    keep = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in " -" or cat[0] in "LMN" or cat == "Pc":
            keep.append(ch)
    return "".join(keep).replace(" ", "-")


def strip_code_spans(line):
    """The line with its inline code spans blanked (same length)."""
    return re.sub(r"(`+)(?:(?!\1).)+?\1", lambda m: " " * len(m.group(0)), line)


def markdown_lines(text):
    """(line number, line) of a Markdown text outside fenced code blocks."""
    fence = None
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if m and m.group(1).startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            continue
        yield no, line


def anchors_of(text):
    """Every anchor a Markdown page offers: its headings' slugs, numbered as
    GitHub numbers duplicates, and explicit <a name|id="...">."""
    found, counts = [], {}
    prev_no, prev = 0, ""
    for no, line in markdown_lines(text):
        base = None
        m = ATX.match(line)
        if m:
            base = slug(heading_text(m.group(2) or ""))
        elif prev_no == no - 1 and prev.strip() and SETEXT.match(line) and \
                not ATX.match(prev) and not re.match(r"^ {0,3}([-*+]|\d+[.)]|\|)\s?", prev):
            base = slug(heading_text(prev.strip()))  # a setext heading: text, then === or ---
        if base is not None:
            n = counts.get(base, 0)
            found.append((no, base if n == 0 else f"{base}-{n}"))
            counts[base] = n + 1
        for a in HTML_ID.findall(line):
            found.append((no, a))
        prev_no, prev = no, line
    return {a for _, a in found}


# ---- the tree ----

def tree_files(source):
    """Paths (relative, '/'-separated) of the files to read: git's tracked
    and not-ignored files when source is a git work tree, else a walk that
    skips build folders."""
    try:
        out = subprocess.run(["git", "-C", source, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, timeout=60)
        if out.returncode == 0:
            files = [f for f in out.stdout.decode("utf-8", "replace").split("\0") if f]
            return sorted({f for f in files if os.path.isfile(os.path.join(source, f))})
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for root, dirs, names in os.walk(source):
        dirs[:] = [d for d in dirs if not SKIP_DIRS.match(d)]
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), source).replace(os.sep, "/"))
    return sorted(files)


class Checker:
    def __init__(self, source):
        self.source = os.path.realpath(source)
        self.problems = []
        self.links = 0
        self.citations = 0
        self.names = 0
        self.pages = {}  # real path -> set of anchors
        self.folders = set()  # top-level folders that hold tracked files

    def problem(self, rel, no, what):
        self.problems.append(f"{rel}:{no}: {what}")

    def read(self, path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def anchors(self, path):
        if path not in self.pages:
            self.pages[path] = anchors_of(self.read(path))
        return self.pages[path]

    def check_anchor(self, rel, no, page, page_shown, anchor, what):
        if anchor in self.anchors(page):
            return
        near = difflib.get_close_matches(anchor, sorted(self.anchors(page)), n=1)
        hint = f' (did you mean "#{near[0]}"?)' if near else ""
        self.problem(rel, no, f"{what}: {page_shown} has no heading for #{anchor}{hint}")

    def resolve(self, rel, no, target, base_dir, what):
        """The real path of target (relative to base_dir, or to the
        repository when it starts with '/'), or None after saying why."""
        path = urllib.parse.unquote(target)
        full = os.path.join(self.source, path.lstrip("/")) if path.startswith("/") \
            else os.path.join(base_dir, path)
        full = os.path.realpath(full)
        if full != self.source and not full.startswith(self.source + os.sep):
            self.problem(rel, no, f"{what}: {target} is outside the repository")
            return None
        if not os.path.exists(full):
            self.problem(rel, no, f"{what}: {target} does not exist")
            return None
        return full

    def check_link(self, rel, no, target):
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1]
        if not target or SCHEME.match(target) or target.startswith("//"):
            return  # a URL: not ours to check offline
        self.links += 1
        what = f"link ({target})"
        here = os.path.join(self.source, rel)
        path, _, anchor = target.partition("#")
        if path == "":
            if anchor:
                self.check_anchor(rel, no, os.path.realpath(here), "this page", anchor, what)
            return
        full = self.resolve(rel, no, path, os.path.dirname(here), what)
        if full is None or not anchor:
            return
        if full.endswith(".md") and os.path.isfile(full):
            self.check_anchor(rel, no, full, path, anchor, what)

    def check_markdown(self, rel):
        text = self.read(os.path.join(self.source, rel))
        for no, line in markdown_lines(text):
            for m in CODE_SPAN.finditer(line):
                self.check_name(rel, no, m.group(2).strip())
            line = strip_code_spans(line)
            for m in INLINE_LINK.finditer(line):
                self.check_link(rel, no, m.group(1))
            m = REF_DEF.match(line)
            if m:
                self.check_link(rel, no, m.group(1))

    def check_name(self, rel, no, name):
        m = REPO_PATH.match(name)
        if m is None or m.group(1) not in self.folders:
            return
        self.names += 1
        if not os.path.exists(os.path.join(self.source, name)):
            self.problem(rel, no, f"file name (`{name}`): {name} does not exist")

    def check_code(self, rel):
        text = self.read(os.path.join(self.source, rel))
        for no, line in enumerate(text.splitlines(), 1):
            for m in OLD_CITATION.finditer(line):
                self.problem(rel, no, f'"{m.group(0)}" cites design notes users do not have; '
                             "cite a section of docs/architecture.md instead")
            for m in CODE_CITATION.finditer(line):
                page, anchor = m.group(1), (m.group(2) or "")[1:]
                self.citations += 1
                what = f"citation ({m.group(0)})"
                full = self.resolve(rel, no, page, self.source, what)
                if full is None:
                    continue
                if anchor and os.path.isfile(full):
                    self.check_anchor(rel, no, full, page, anchor, what)
                elif m.group(2) == "#":
                    self.problem(rel, no, f"{what}: an empty #anchor")

    def run(self):
        files = tree_files(self.source)
        self.folders = {f.split("/", 1)[0] for f in files if "/" in f}
        for rel in files:
            full = os.path.realpath(os.path.join(self.source, rel))
            if full == SELF or rel == SELF_REL:
                continue
            name = rel.rsplit("/", 1)[-1]
            if name.endswith(".md"):
                self.check_markdown(rel)
            elif name.endswith(CODE_SUFFIXES) or name in CODE_NAMES:
                if "/corpus/" not in "/" + rel:  # fuzz seeds are data, not code
                    self.check_code(rel)
        return self


def report(checker, out=sys.stdout):
    for p in checker.problems:
        print(p, file=out)
    print(f"check_docs: {checker.links} Markdown links, {checker.citations} code citations and "
          f"{checker.names} file names checked, {len(checker.problems)} problems", file=out)
    if checker.links + checker.citations == 0:
        print("check_docs: nothing was checked (no Markdown link and no citation found): "
              "failing, as a check that ran nothing proves nothing", file=out)
        return 1
    return 1 if checker.problems else 0


# ---- the self-test ----

def write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def self_test():
    """Runs the checker on made-up trees; returns 0 when it behaves."""
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    def mentions(problems, file, line, text):
        return any(p.startswith(f"{file}:{line}:") and text in p for p in problems)

    old = "DESIGN" + " \u00a7"
    good = {
        "README.md": "# Tool \u2014 the best\n\nSee [the guide](docs/guide.md) and "
                     "[modes](docs/guide.md#the-sync-mode), [below](#usage), "
                     "[twice](docs/guide.md#usage-1), [site](https://example.com/x.md), "
                     "[folder](docs/), ![pic](docs/pic.svg).\n\n## Usage\n\n"
                     "```\n[not a link](nowhere.md)\n```\n\n`[code](nowhere.md)`\n\n"
                     "[ref]: docs/guide.md#psctl-status-and-top\n",
        "docs/guide.md": "# Guide\n\n## The `sync` mode\n\n## Usage\n\n## Usage\n\n"
                         "## [psctl status](../README.md) and *top*\n\nBack to the "
                         "[README](../README.md#tool--the-best).\n\nSetext heading\n---\n\n"
                         "[setext](#setext-heading)\n\nThe code is in `src/a.c`; "
                         "`build/bin/x`, `src/<name>.c` and `src/*.c` are not checked.\n",
        "docs/pic.svg": "<svg/>\n",
        "src/a.c": "/* a.c — see docs/guide.md#usage-1 and docs/guide.md */\n",
        "CMakeLists.txt": "# see README.md\n",
    }
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        write_tree(tmp, good)
        c = Checker(tmp).run()
        expect(c.problems == [], f"a good tree passes, got {c.problems}")
        expect(c.links == 10, f"a good tree has 10 links checked, got {c.links}")
        expect(c.citations == 3, f"a good tree has 3 citations checked, got {c.citations}")
        expect(c.names == 1, f"a good tree has 1 file name checked, got {c.names}")
        expect(report(c, open(os.devnull, "w")) == 0, "a good tree exits 0")

    bad = dict(good)
    bad["README.md"] = ("# Tool \u2014 the best\n\n[gone](docs/missing.md)\n[no anchor](docs/guide.md#nope)\n"
                        "[in page](#nowhere)\n[outside](../elsewhere/DESIGN.md)\n"
                        "[case](docs/guide.md#Usage)\nSee `src/gone.c`.\n")
    bad["src/b.h"] = (f"/* b.h — {old}4, \u00a77 say so */\n/* docs/missing.md#x */\n"
                      "/* docs/guide.md#not-there */\n")
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        write_tree(tmp, bad)
        c = Checker(tmp).run()
        p = c.problems
        expect(mentions(p, "README.md", 3, "docs/missing.md does not exist"), "a missing page")
        expect(mentions(p, "README.md", 4, "has no heading for #nope"), "a missing anchor")
        expect(mentions(p, "README.md", 5, "this page has no heading for #nowhere"),
               "a missing in-page anchor")
        expect(mentions(p, "README.md", 6, "is outside the repository"), "a link outside")
        expect(mentions(p, "README.md", 7, 'did you mean "#usage"'), "an anchor in upper case")
        expect(mentions(p, "README.md", 8, "src/gone.c does not exist"), "a missing file name")
        expect(mentions(p, "src/b.h", 1, "\u00a74, \u00a77\" cites design notes"), "an old citation")
        expect(mentions(p, "src/b.h", 2, "docs/missing.md does not exist"), "a missing cited page")
        expect(mentions(p, "src/b.h", 3, "has no heading for #not-there"),
               "a missing cited section")
        expect(len(p) == 9, f"9 problems, got {len(p)}: {p}")
        expect(report(c, open(os.devnull, "w")) == 1, "a bad tree exits 1")

    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        write_tree(tmp, {"README.md": "# Nothing to follow\n", "a.c": "int x;\n"})
        c = Checker(tmp).run()
        expect(c.problems == [] and c.links + c.citations == 0, "an empty tree has nothing")
        expect(report(c, open(os.devnull, "w")) == 1, "a tree with nothing to check exits 1")

    expect(slug(heading_text("Theta, tensors and shards")) == "theta-tensors-and-shards",
           "slug: punctuation goes")
    expect(slug(heading_text("psd \u2014 a parameter server in C")) ==
           "psd--a-parameter-server-in-c", "slug: each space is a '-'")
    expect(slug(heading_text("`shared_memory` and θ")) == "shared_memory-and-θ",
           "slug: '_' and letters stay")
    for f in failures:
        print(f"check_docs --self-test: FAILED: {f}")
    print(f"check_docs --self-test: {'failed' if failures else 'passed'}")
    return 1 if failures else 0


def main(argv):
    default = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    p = argparse.ArgumentParser(prog="check_docs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=default, help="the repository to check")
    p.add_argument("--self-test", action="store_true", help="check the checker and exit")
    a = p.parse_args(argv)
    if a.self_test:
        return self_test()
    if not os.path.isdir(a.source):
        print(f"check_docs: {a.source}: not a folder", file=sys.stderr)
        return 2
    return report(Checker(a.source).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
