"""Media files whose type libmagic knows, made here for the suites: real
pictures (PNG), a voice note (opusenc, Debian's opus-tools), an MP4 with a
movie header, a 512x512 WebP header, a PDF."""
import os
import struct
import subprocess
import tempfile
import wave
import zlib


def png_wh(w, h, seed=0):
    """A w x h RGB PNG with a gradient (a picture the thumbnailer decodes)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + b"".join(bytes([(x * 7 + seed) & 255, (y * 5) & 255, 0x40]) for x in range(w))
                   for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def voice(seconds=3):
    """An Ogg Opus voice note of that many seconds (a square wave)."""
    with tempfile.TemporaryDirectory() as td:
        with wave.open(os.path.join(td, "v.wav"), "wb") as wf:
            wf.setnchannels(1)
            wf.setsampwidth(2)
            wf.setframerate(48000)
            wf.writeframes(b"".join(struct.pack("<h", int(8000 * ((i // 40) % 2 * 2 - 1)))
                                    for i in range(48000 * seconds)))
        subprocess.run(["opusenc", "--quiet", "--bitrate", "24", os.path.join(td, "v.wav"),
                        os.path.join(td, "v.ogg")], check=True)
        with open(os.path.join(td, "v.ogg"), "rb") as f:
            return f.read()


def mp4(ms=12345, mdat=4096):
    """ftyp, mdat and moov/mvhd (version 0, timescale 1000, ms long)."""
    mv = bytes([0, 0, 0, 0]) + bytes(8) + struct.pack(">II", 1000, ms) + bytes(80)
    mvhd = struct.pack(">I", 8 + len(mv)) + b"mvhd" + mv
    return (struct.pack(">I", 16) + b"ftypisom" + bytes(4) + struct.pack(">I", 8 + mdat) + b"mdat" + bytes(mdat) +
            struct.pack(">I", 8 + len(mvhd)) + b"moov" + mvhd)


def webp_wh(w, h):
    """A lossless WebP header saying w x h (14-bit width-1 and height-1)."""
    return (b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f" +
            struct.pack("<I", (w - 1) | (h - 1) << 14) + b"\0" * 9)


WEBP512 = webp_wh(512, 512)  # as stickers must be
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def pdf_pages(n):
    """A small PDF with a page tree of n pages (uncompressed, as many writers make them)."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(n))
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>"]
    objs += ["<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * n
    body = b"%PDF-1.4\n" + b"".join(f"{i + 1} 0 obj\n{o}\nendobj\n".encode() for i, o in enumerate(objs))
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
