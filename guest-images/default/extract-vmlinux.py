#!/usr/bin/env python3
"""extract-vmlinux.py BZIMAGE OUT: writes the uncompressed ELF vmlinux from an x86 bzImage.

Reads the boot setup header: setup_sects (0x1f1, 0 means 4) gives the start of the
protected-mode code at (setup_sects + 1) * 512; payload_offset (0x248) and
payload_length (0x24c) locate the compressed kernel relative to that start. The
kernel build appends the uncompressed size as a little-endian u32 to the payload;
it is stripped before decompression and used to check the result.
"""
import struct
import subprocess
import sys

DECOMPRESSORS = [
    (b"\x02\x21\x4c\x18", ["lz4", "-dc"]),  # LZ4 legacy frame (Debian's default)
    (b"\x1f\x8b", ["gzip", "-dc"]),
    (b"\xfd7zXZ\x00", ["xz", "-dc"]),
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]),
]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        sys.exit(f"{src}: not a bzImage (no HdrS boot header)")
    setup_sects = data[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    offset, length = struct.unpack_from("<II", data, 0x248)
    begin, end = pm_start + offset, pm_start + offset + length
    if length < 8 or end > len(data):
        sys.exit(f"{src}: payload {begin:#x}+{length:#x} outside the file")
    payload = data[begin:end]
    expected_size = struct.unpack("<I", payload[-4:])[0]
    for magic, command in DECOMPRESSORS:
        if payload.startswith(magic):
            break
    else:
        sys.exit(f"{src}: unknown payload compression (magic {payload[:6].hex()})")
    result = subprocess.run(command, input=payload[:-4], stdout=subprocess.PIPE)
    if result.returncode != 0:
        sys.exit(f"{src}: {' '.join(command)} failed with status {result.returncode}")
    vmlinux = result.stdout
    if vmlinux[:4] != b"\x7fELF":
        sys.exit(f"{src}: decompressed payload is not an ELF file")
    if len(vmlinux) != expected_size:
        print(f"warning: vmlinux is {len(vmlinux)} bytes, header says {expected_size}", file=sys.stderr)
    with open(out, "wb") as f:
        f.write(vmlinux)
    print(f"vmlinux: {command[0]} payload, {len(vmlinux)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
