#!/usr/bin/env python3
"""The shape the style guide and issue 8 ask of the source tree, checked.

- No function body over 100 lines and no source file over 1500 lines in
  core/, net/ and security/.
- No call circle between the files of net/ (a file calling a function
  another net/ file defines is an edge).
- core/ and security/ make no syscalls: none of the libc or BoringSSL calls
  that reach the kernel, and no thread or clock calls.
- core/ never includes security/ or net/ headers; security/ never includes
  net/ headers.

Exit 0 when all hold, 1 with one line per breach otherwise. Run from
anywhere: paths are relative to the repository root.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUNC_LINES_MAX = 100
FILE_LINES_MAX = 1500
SYSCALLS = ("open", "openat", "read", "write", "close", "fopen", "fread", "fwrite", "fstat",
            "stat", "socket", "send", "recv", "sendmsg", "recvmsg", "getrandom", "RAND_bytes",
            "clock_gettime", "gettimeofday", "time", "pthread_create", "pthread_mutex_lock",
            "pthread_rwlock_rdlock", "pthread_rwlock_wrlock", "pthread_once", "mmap", "ioctl",
            "io_uring_submit", "nanosleep", "usleep", "sleep")


def sources(folder, exts=(".c",)):
    d = os.path.join(ROOT, folder)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(exts))


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def functions(text):
    """(name, first line, body lines) of each top-level function: a line
    that is exactly '{' after a header at column 0, up to the next '}'."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line != "{" or i == 0:
            continue
        k = i - 1
        while k > 0 and lines[k][:1].isspace():
            k -= 1
        m = re.search(r"(\w+)\s*\(", lines[k])
        if not m:
            continue  # a struct or array initialiser
        j = i + 1
        while j < len(lines) and lines[j] != "}":
            j += 1
        yield m.group(1), k + 1, j - i - 1


def main():
    errors = []
    for folder in ("core", "net", "security"):
        for path in sources(folder, (".c", ".h")):
            rel = os.path.relpath(path, ROOT)
            text = open(path, encoding="utf-8").read()
            n = text.count("\n")
            if n > FILE_LINES_MAX:
                errors.append("%s: %d lines, over %d" % (rel, n, FILE_LINES_MAX))
            for name, line, body in functions(text):
                if body > FUNC_LINES_MAX:
                    errors.append("%s:%d: %s has a %d-line body, over %d"
                                  % (rel, line, name, body, FUNC_LINES_MAX))
    for folder in ("core", "security"):
        for path in sources(folder, (".c", ".h")):
            rel = os.path.relpath(path, ROOT)
            text = strip_comments(open(path, encoding="utf-8").read())
            for call in SYSCALLS:
                for m in re.finditer(r"(?<![\w.>])%s\s*\(" % call, text):
                    line = text.count("\n", 0, m.start()) + 1
                    errors.append("%s:%d: %s() in %s/, which makes no syscalls"
                                  % (rel, line, call, folder))
            for m in re.finditer(r'#include\s+"([^"]+)"', text):
                inc = m.group(1)
                bad = (os.path.exists(os.path.join(ROOT, "net", inc)) or
                       (folder == "core" and os.path.exists(os.path.join(ROOT, "security", inc))))
                if bad and not os.path.exists(os.path.join(ROOT, folder, inc)):
                    line = text.count("\n", 0, m.start()) + 1
                    errors.append("%s:%d: includes %s from outside what %s/ may use"
                                  % (rel, line, inc, folder))
    errors += net_call_circles()
    for e in errors:
        print(e)
    return 1 if errors else 0


def net_call_circles():
    files = sources("net")
    defined = {}
    bodies = {}
    for path in files:
        text = strip_comments(open(path, encoding="utf-8").read())
        bodies[path] = text
        for m in re.finditer(r"^(?!static)[a-z][\w \*]*?\b(\w+)\(", text, re.M):
            defined.setdefault(m.group(1), path)
    edges = {p: set() for p in files}
    for path, text in bodies.items():
        for name, where in defined.items():
            if where != path and re.search(r"\b%s\s*\(" % name, text):
                edges[path].add(where)

    def reaches(a, b, seen):
        for x in edges[a]:
            if x == b or (x not in seen and reaches(x, b, seen | {x})):
                return True
        return False

    out = []
    for p in files:
        if reaches(p, p, {p}):
            out.append("%s: in a call circle inside net/ (calls %s)"
                       % (os.path.relpath(p, ROOT),
                          ", ".join(sorted(os.path.relpath(x, ROOT) for x in edges[p]))))
    return out


if __name__ == "__main__":
    sys.exit(main())
