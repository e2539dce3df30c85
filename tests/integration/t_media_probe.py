#!/usr/bin/env python3
"""Voice notes and videos probed by supervisor/media_probe.c
(build/tests/tools/media_probe_tool), on real files: Ogg Opus made here by
opusenc (Debian's opus-tools) from sound synthesized here, whose duration is
also read by music-metadata (the library Baileys uses for it); the waveform
follows the loudness of the sound (silence, a tone, silence; a rising tone);
not-Opus files, a truncated file, and an MP4 built box by box. The probes
must not move the descriptor's offset."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import wave

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, check, done  # noqa: E402

TOOLS = [os.path.join(ROOT, "build/tests/tools/media_probe_tool")]
if os.path.exists(os.path.join(ROOT, "build/san/tests/tools/media_probe_tool")):
    TOOLS.append(os.path.join(ROOT, "build/san/tests/tools/media_probe_tool"))
tmp = tempfile.mkdtemp(prefix="wapi-probe-")


def wav(path, seconds, amp_at, rate=48000):
    """A mono 16-bit WAV whose amplitude at time t is amp_at(t) (0..1), 440 Hz."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            t = i / rate
            frames += struct.pack("<h", int(32000 * amp_at(t) * math.sin(2 * math.pi * 440 * t)))
        w.writeframes(bytes(frames))


def opus(name, seconds, amp_at):
    src, dst = os.path.join(tmp, name + ".wav"), os.path.join(tmp, name + ".ogg")
    wav(src, seconds, amp_at)
    subprocess.run(["opusenc", "--quiet", "--bitrate", "24", src, dst], check=True)
    return dst


def probe(tool, kind, path):
    r = subprocess.run([tool, kind, path], capture_output=True, text=True)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        return r.returncode, {"raw": r.stdout + r.stderr}


def mm_duration_ms(path):
    js = ("import('music-metadata').then(async (mm) => { const m = await mm.parseFile(process.argv[1], { duration: true });"
          " console.log(Math.round(m.format.duration * 1000)); })")
    r = subprocess.run(["node", "-e", js, path], capture_output=True, text=True, cwd=os.path.join(ROOT, "tests/wa"))
    return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None


three = opus("three", 3.0, lambda t: 1.0 if 1.0 <= t < 2.0 else 0.0)
rising = opus("rising", 2.0, lambda t: t / 2.0)
silent = opus("silent", 1.5, lambda t: 0.0)
long_ = opus("long", 61.25, lambda t: 0.5)
mm3, mm_long = mm_duration_ms(three), mm_duration_ms(long_)

for tool in TOOLS:
    tag = "asan" if "/san/" in tool else "plain"
    rc, js = probe(tool, "opus", three)
    ms = js.get("ms", -1)
    wf = js.get("waveform", [])
    check(f"[{tag}] opus: 3 s of sound read as 3000 ms (±30; music-metadata says {mm3})",
          rc == 0 and abs(ms - 3000) <= 30 and mm3 is not None and abs(ms - mm3) <= 30, js)
    check(f"[{tag}] opus: the descriptor's offset is left where it was", js.get("offset_moved") is False, js)
    check(f"[{tag}] waveform: 64 values of 0..100, the loudest 100",
          len(wf) == 64 and all(0 <= v <= 100 for v in wf) and max(wf) == 100, wf)
    quiet = wf[:19] + wf[45:]
    loud = wf[23:41]
    check(f"[{tag}] waveform: silence, then the tone, then silence (a slice per 47 ms)",
          wf and max(quiet) <= 10 and min(loud) >= 85, wf)
    rc, js = probe(tool, "opus", rising)
    wf = js.get("waveform", [])
    rises = wf and all(wf[i + 8] >= wf[i] for i in range(0, 56)) and wf[-1] >= 90 and wf[2] <= 15
    check(f"[{tag}] waveform of a rising tone rises", rc == 0 and rises, wf)
    rc, js = probe(tool, "opus", silent)
    check(f"[{tag}] silence: 1500 ms, a waveform of zeros",
          rc == 0 and abs(js.get("ms", 0) - 1500) <= 30 and js.get("waveform") == [0] * 64, js)
    rc, js = probe(tool, "opus", long_)
    check(f"[{tag}] a minute of sound: 61250 ms (music-metadata: {mm_long}), even loudness",
          rc == 0 and abs(js.get("ms", 0) - 61250) <= 30 and mm_long is not None and abs(js["ms"] - mm_long) <= 30
          and min(js.get("waveform", [0])) >= 90, js)

    wavfile = os.path.join(tmp, "three.wav")
    rc, js = probe(tool, "opus", wavfile)
    check(f"[{tag}] a WAV file is not Ogg Opus: refused", rc == 2 and "not an Ogg Opus" in js.get("error", ""), js)
    with open(three, "rb") as f:
        data = f.read()
    cut = os.path.join(tmp, "cut.ogg")
    with open(cut, "wb") as f:
        f.write(data[:len(data) // 2])
    rc, js = probe(tool, "opus", cut)
    check(f"[{tag}] half an Ogg Opus file: refused or shorter, never a crash",
          rc == 2 or (rc == 0 and js.get("ms", 9999) < 3000), js)
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    rc, js = probe(tool, "opus", empty)
    check(f"[{tag}] an empty file: refused", rc == 2, js)

    # An MP4 with ftyp, mdat and moov/mvhd (version 0, timescale 1000, 12.345 s).
    mv = bytes([0, 0, 0, 0]) + bytes(8) + struct.pack(">II", 1000, 12345) + bytes(80)
    mvhd = struct.pack(">I", 8 + len(mv)) + b"mvhd" + mv
    mp4 = (struct.pack(">I", 16) + b"ftypisom" + bytes(4) + struct.pack(">I", 8 + 4096) + b"mdat" + bytes(4096) +
           struct.pack(">I", 8 + len(mvhd)) + b"moov" + mvhd)
    path = os.path.join(tmp, "v.mp4")
    with open(path, "wb") as f:
        f.write(mp4)
    rc, js = probe(tool, "mp4", path)
    check(f"[{tag}] mp4: 12345 ms from moov/mvhd after the mdat, offset untouched",
          rc == 0 and js.get("ms") == 12345 and js.get("offset_moved") is False, js)
    rc, js = probe(tool, "mp4", three)
    check(f"[{tag}] an Ogg file is not an MP4: refused with a reason", rc == 2 and js.get("error"), js)

subprocess.run(["rm", "-rf", tmp])
done()
