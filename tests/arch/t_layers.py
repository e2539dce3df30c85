#!/usr/bin/env python3
"""The layers of the code hold: supervisor/wa/ (the WhatsApp protocol
library) includes nothing above it and its archive needs no symbol of the
supervisor or the workers; the supervisor's modules and the workers' form no
import cycle; the workers never name the media folder and their media
handlers open no file by path (the supervisor hands them descriptors). Reads the sources and build/*.a
(built by make all)."""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
os.chdir(ROOT)
failed = 0


def check(name, ok, detail=""):
    global failed
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok else f" ({detail})"))
    failed += not ok


INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INC.findall(f.read())


# 1. wa/ includes only itself, common/ and system headers.
wa_files = sorted(glob.glob("supervisor/wa/*.[ch]"))
bad = [(p, i) for p in wa_files for i in includes(p)
       if i.startswith("supervisor/") or i.startswith("../") or i.startswith("workers/")]
check("supervisor/wa/ includes no header above it", wa_files and not bad, bad[:5])
up = [(p, i) for p in wa_files for i in includes(p)
      if "/" not in i.replace("proto/", "", 1) and not os.path.exists(os.path.join("supervisor/wa", i))
      and not i.endswith(".pb-c.h")]
check("every quoted include in supervisor/wa/ is a file of supervisor/wa/ or common/", not up, up[:5])


# 2. libwa.a needs no symbol that libsup.a or libwrk.a defines.
def syms(archive, defined):
    args = ["nm", "--defined-only" if defined else "-u", archive]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    s = set()
    for line in out.splitlines():
        f = line.split()
        if defined and len(f) == 3 and f[1] in "TDBR":
            s.add(f[2])
        elif not defined and len(f) == 2 and f[0] == "U":
            s.add(f[1])
    return s


have = all(os.path.exists(f"build/lib{x}.a") for x in ("wa", "sup", "wrk"))
check("the archives are built", have, "run make all")
if have:
    wa_needs = syms("build/libwa.a", False)
    above = wa_needs & (syms("build/libsup.a", True) | syms("build/libwrk.a", True))
    check("libwa.a needs nothing from the supervisor or the workers", wa_needs and not above, sorted(above)[:10])


# 3. No import cycle among the modules of each program (a module = .c + .h;
# x_int.h, the internal header of x's files, belongs to x).
def module(name):
    return name[:-4] if name.endswith("_int") else name


def cycle(dirname):
    mods = {}
    for p in glob.glob(f"{dirname}/*.[ch]"):
        m = module(os.path.splitext(os.path.basename(p))[0])
        deps = mods.setdefault(m, set())
        for i in includes(p):
            b = os.path.basename(i)
            d = module(os.path.splitext(b)[0])
            if os.path.exists(os.path.join(dirname, b)) and d != m and (i == b or i.startswith(dirname + "/")):
                deps.add(d)
    state, path = {}, []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(mods.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        state[m] = 2
        path.pop()
        return None

    for m in sorted(mods):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


for d in ("supervisor", "supervisor/wa", "workers", "common"):
    c = cycle(d)
    check(f"no import cycle among the modules of {d}/", c is None, " -> ".join(c or []))

# 4. The supervisor owns the media store: workers get its files as
# descriptors. None of them names its folder (paths.media) or its module, and
# the media handlers open no file by path.
NAMES_STORE = re.compile(r"paths\.media|media_store\.h")
OPENS = re.compile(r"\bopen(?:at)?\s*\(|\bfopen\s*\(")
uses = []
for p in sorted(glob.glob("workers/*.[ch]")):
    media = os.path.basename(p).startswith(("media", "multipart"))
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.lstrip().startswith(("/*", "*")):
                continue
            if NAMES_STORE.search(line) or (media and OPENS.search(line)):
                uses.append(f"{p}:{n}")
check("workers/ never names the media folder, and the media handlers open no file by path", not uses, uses[:5])

sys.exit(1 if failed else 0)
