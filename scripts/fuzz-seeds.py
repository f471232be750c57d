#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets in Fuzz/, written at run time into OUT/<target>/.

Usage: scripts/fuzz-seeds.py OUT [VMLINUX [ELF_PROGRAM]]

From the real kernel image (never committed): a reduced .BTF (the structures the kernel layout
reads, pointers cut to void), a kallsyms table cut to its first symbols (the real token table and
names), and the first ORC entries with the real orc_entry layout. From a real guest program: its
first 64 KiB as a process maps them. The other seeds are small hand-made inputs in the formats the
targets read (see each target's doc comment in Fuzz/Sources/leakvisor-fuzz/).
"""
import json
import os
import struct
import sys

HIGH_HALF = 0xFFFF_8000_0000_0000


def write(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- ELF

class ELF:
    def __init__(self, data):
        self.data = data
        assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 file"
        (self.phoff, self.shoff) = struct.unpack_from("<QQ", data, 32)
        (self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx) = struct.unpack_from("<HHHHH", data, 54)
        self.sections = {}
        if self.shoff:
            headers = [struct.unpack_from("<IIQQQQIIQQ", data, self.shoff + i * self.shentsize) for i in range(self.shnum)]
            strtab = headers[self.shstrndx]
            for h in headers:
                start = strtab[4] + h[0]
                name = data[start:data.index(b"\0", start)].decode()
                self.sections[name] = (h[3], data[h[4]:h[4] + h[5]])   # address, bytes

    def load_segments(self):
        for i in range(self.phnum):
            p_type, _, offset, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", self.data, self.phoff + i * self.phentsize)
            if p_type == 1:
                yield offset, vaddr, filesz


# ---------------------------------------------------------------- BTF

BTF_EXTRA = {1: lambda v: 4, 3: lambda v: 12, 4: lambda v: 12 * v, 5: lambda v: 12 * v, 6: lambda v: 8 * v,
             13: lambda v: 8 * v, 14: lambda v: 4, 15: lambda v: 12 * v, 17: lambda v: 4, 19: lambda v: 12 * v}
LAYOUT_ROOTS = ["task_struct", "mm_struct", "maple_tree", "maple_range_64", "maple_arange_64", "maple_metadata",
                "vm_area_struct", "file", "path", "dentry", "qstr", "inode", "super_block", "mount", "vfsmount",
                "vm_special_mapping", "orc_entry", "inactive_task_frame", "pt_regs", "address_space", "xarray",
                "xa_node", "page", "folio", "maple_type", "pageflags"]


class BTF:
    def __init__(self, data):
        magic, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data, 0)
        assert magic == 0xEB9F
        self.types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.records = [None]                       # id -> (name_off, info, size_or_type, extra bytes)
        at = 0
        while at < len(self.types):
            name_off, info, size_or_type = struct.unpack_from("<III", self.types, at)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            extra = BTF_EXTRA.get(kind, lambda v: 0)(vlen)
            self.records.append((name_off, info, size_or_type, self.types[at + 12:at + 12 + extra]))
            at += 12 + extra

    def name(self, offset):
        return self.strings[offset:self.strings.index(b"\0", offset)].decode()

    def named(self, name):
        return [i for i, r in enumerate(self.records) if r and r[0] and self.name(r[0]) == name]

    def member_bits(self, struct_name, member):
        for i in self.named(struct_name):
            name_off, info, size, extra = self.records[i]
            if (info >> 24) & 0x1F != 4:
                continue
            for k in range(info & 0xFFFF):
                m_name, _, m_offset = struct.unpack_from("<III", extra, 12 * k)
                if self.name(m_name) == member:
                    if info >> 31:
                        return m_offset & 0xFFFFFF, m_offset >> 24
                    return m_offset, 0
            return None
        return None

    def reduced(self, roots):
        """The types reachable from `roots` by name, pointers turned into pointers to void."""
        keep, stack = set(), [i for name in roots for i in self.named(name)]
        while stack:
            i = stack.pop()
            if i == 0 or i in keep or i >= len(self.records):
                continue
            keep.add(i)
            _, info, size_or_type, extra = self.records[i]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind in (8, 9, 10, 11, 18):          # typedef, volatile, const, restrict, type tag
                stack.append(size_or_type)
            elif kind == 3:
                stack.extend(struct.unpack_from("<II", extra, 0))
            elif kind in (4, 5):
                stack.extend(struct.unpack_from("<I", extra, 12 * k + 4)[0] for k in range(vlen))
        order = sorted(keep)
        new_id = {old: n + 1 for n, old in enumerate(order)}
        strings, string_at = bytearray(b"\0"), {"": 0}

        def string(offset):
            text = self.name(offset) if offset else ""
            if text not in string_at:
                string_at[text] = len(strings)
                strings.extend(text.encode() + b"\0")
            return string_at[text]

        types = bytearray()
        for old in order:
            name_off, info, size_or_type, extra = self.records[old]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            extra = bytearray(extra)
            if kind in (8, 9, 10, 11, 18):
                size_or_type = new_id.get(size_or_type, 0)
            elif kind == 2:
                size_or_type = 0
            elif kind == 3:
                elem, index, count = struct.unpack_from("<III", extra, 0)
                struct.pack_into("<III", extra, 0, new_id.get(elem, 0), new_id.get(index, 0), count)
            elif kind in (4, 5):
                for k in range(vlen):
                    m_name, m_type, m_offset = struct.unpack_from("<III", extra, 12 * k)
                    struct.pack_into("<III", extra, 12 * k, string(m_name), new_id.get(m_type, 0), m_offset)
            elif kind in (6, 19):
                width = 8 if kind == 6 else 12
                for k in range(vlen):
                    struct.pack_into("<I", extra, width * k, string(struct.unpack_from("<I", extra, width * k)[0]))
            elif kind in (13, 15):
                continue                             # not reachable from structures
            types += struct.pack("<III", string(name_off), info, size_or_type) + extra
        header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
        return header + bytes(types) + bytes(strings)


# ---------------------------------------------------------------- kallsyms

def align8(base, offset):
    return offset + (-(base + offset) % 8)


def kallsyms_seed(image, base, keep=300):
    """The kernel's kallsyms tables with only the first `keep` symbols, as `base` + image bytes."""
    anchor = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
    at = image.find(anchor)
    while at >= 0:
        cursor, strings = at - 1, 0
        while strings < 47 and cursor > 0:
            cursor -= 1
            strings += image[cursor] == 0
        start = image.rfind(b"\0", 0, cursor) + 1
        tokens, offsets, c = [], [], start
        for _ in range(256):
            end = image.index(b"\0", c)
            offsets.append(c - start)
            tokens.append(image[c:end])
            c = end + 1
        index_at = align8(base, c)
        if (base + start) % 8 == 0 and list(struct.unpack_from("<256H", image, index_at)) == offsets:
            break
        at = image.find(anchor, at + 1)
    else:
        raise SystemExit("no kallsyms token table in the image")
    token_table = image[start:index_at + 512]
    # relative_base (u64), num_syms (u32), names ...: the first candidate whose names parse up to the markers.
    probe = align8(base, start - 16) - 8
    while probe > start - (96 << 20):
        relative_base, count = struct.unpack_from("<QI", image, probe)
        if relative_base & 0x1F_FFFF == 0 and relative_base >= HIGH_HALF and 256 <= count <= 4_000_000:
            names, c = [], probe + 16
            for _ in range(count):
                length = image[c]
                head = 1
                if length & 0x80:
                    length, head = (length & 0x7F) | image[c + 1] << 7, 2
                names.append(image[c:c + head + length])
                c += head + length
                if c > start:
                    break
            if len(names) == count and c <= start:
                offsets_at = probe - 4 * count
                offsets_at -= (base + offsets_at) % 8
                break
        probe -= 8
    else:
        raise SystemExit("no kallsyms symbol table before the token table")
    new_base = 0xFFFF_FFFF_8200_0000
    out = bytearray(image[offsets_at:offsets_at + 4 * keep])
    out += b"\0" * (align8(new_base, len(out)) - len(out))
    out += struct.pack("<QI", relative_base, keep) + b"\0" * 4
    names_start = len(out)
    marker_offsets = []
    for n, name in enumerate(names[:keep]):
        if n % 256 == 0:
            marker_offsets.append(len(out) - names_start)
        out += name
    out += b"\0" * (align8(new_base, len(out)) - len(out))
    out += b"".join(struct.pack("<I", m) for m in marker_offsets)
    out += b"\0" * (align8(new_base, len(out)) - len(out))
    out += token_table
    return struct.pack("<Q", new_base) + bytes(out)


# ---------------------------------------------------------------- hand-made seeds

def page_walker_seeds(out):
    def image(entries, data):
        mem = bytearray(0x8000)
        for at, value in entries:
            struct.pack_into("<Q", mem, at, value)
        for at, value in data:
            mem[at:at + len(value)] = value
        return bytes(mem).rstrip(b"\0")

    four_level = image([(0x1000, 0x2007), (0x2000, 0x3007), (0x3000, 0x4007), (0x3008, 0x20_0087), (0x2008, 0x83),
                        (0x4000 + 0x10 * 8, 0x6007), (0x4000 + 0x11 * 8, 0x7005)],
                       [(0x6FF8, b"hello, guest\0"), (0x7000, b"second page\0")])
    queries = [(0, 0x10FF8), (1, 0x11000), (2, 0x10FF8), (3, 0x10FFC), (4, 0x10FF0), (5, 0x10FF8), (0, 0x40000000), (2, 0x20_0000)]
    head = struct.pack("<QQ", 0x1000, 0) + b"".join(struct.pack("<BQH", k, va, 24) for k, va in queries)
    write(out, "page-walker", "four-level", head + four_level)
    five_level = image([(0x5000, 0x1007), (0x1000, 0x2007), (0x2000, 0x3007), (0x3000, 0x4007), (0x4000 + 0x10 * 8, 0x6007)],
                       [(0x6000, b"five\0")])
    head = struct.pack("<QQ", 0x5000, 1 << 12) + b"".join(struct.pack("<BQH", k, 0x10000, 8) for k in range(8))
    write(out, "page-walker", "five-level", head + five_level)


def virtio_seeds(out):
    desc, avail, used, header, data, status = 0x100, 0x200, 0x300, 0x400, 0x500, 0x700
    for name, request_type, flags in [("read", 0, 2), ("write", 1, 0), ("get-id", 8, 2), ("flush", 4, 2)]:
        mem = bytearray(0x710)
        struct.pack_into("<QIHH", mem, desc, header, 16, 1, 1)
        struct.pack_into("<QIHH", mem, desc + 16, data, 512, 1 | flags, 2)
        struct.pack_into("<QIHH", mem, desc + 32, status, 1, 2, 0)
        struct.pack_into("<HHH", mem, avail, 0, 1, 0)
        struct.pack_into("<IIQ", mem, header, request_type, 0, 3)
        ops = []

        def w(offset, value):
            ops.append(struct.pack("<BHI", 4, offset, value))     # kind 4: 4-byte write

        def r(offset):
            ops.append(struct.pack("<BHI", 5, offset, 0))         # kind 5: 4-byte read

        w(0x70, 0); w(0x70, 1); w(0x70, 3)
        w(0x24, 0); w(0x20, 0x200 | 0x4); w(0x24, 1); w(0x20, 1)
        w(0x70, 11); r(0x70)
        w(0x30, 0); r(0x34); w(0x38, 8)
        w(0x80, desc); w(0x84, 0); w(0x90, avail); w(0x94, 0); w(0xA0, used); w(0xA4, 0)
        w(0x44, 1); w(0x70, 15); w(0x50, 0); r(0x60); w(0x64, 1); r(0x100); r(0x0)
        write(out, "virtio", name, struct.pack("<H", len(mem)) + bytes(mem) + b"".join(ops))


def control_seeds(out):
    requests = [{"processes": {}}, {"mappings": {"pid": 42}}, {"stacks": {"pid": 1}},
                {"symbol": {"address": 18446744071562067968, "pid": 42}}, {"symbol": {"address": 4198400}},
                {"report": {"allProcesses": True}}, {"detach": {}}]
    for n, request in enumerate(requests):
        write(out, "control", f"request-{n}", json.dumps(request).encode() + b"\n")
    responses = [{"error": "no such process"},
                 {"processes": [{"pid": 1, "parentPID": 0, "name": "init", "state": "S", "isKernelThread": False,
                                 "threadIDs": [1], "arguments": ["/init"], "pageTableRoot": 4096}]},
                 {"mappings": [{"start": 4194304, "end": 4198400, "permissions": "r-xp", "fileOffset": 0, "deviceMajor": 0,
                                "deviceMinor": 2, "inode": 7, "path": "/bin/busybox", "fileObject": 0}]},
                 {"symbol": {"pc": 4198400, "function": "main", "offset": 16, "module": "/bin/prog"}}]
    for n, response in enumerate(responses):
        write(out, "control", f"response-{n}", json.dumps(response).encode() + b"\n")


def report_seeds(out):
    def allocate(space, address, size, function=0, stack=(0x401000, 0x402000), thread=42, time=1):
        return (struct.pack("<BQQBB", space << 4 | 0, address, size, function, len(stack))
                + b"".join(struct.pack("<Q", pc) for pc in stack) + struct.pack("<iQ", thread, time))

    identify = struct.pack("<BB", 8, 4) + b"prog" + struct.pack("<QQQi", 0x400000, 0x401000, 0, 42)
    ordinary = identify + allocate(0, 0x5000, 24) + allocate(0, 0x5020, 48, 1) + allocate(0, 0x6000, 4096, 8)
    ordinary += struct.pack("<BBBQiQ", 6, 0, 4, 0x401100, 42, 5)                      # free the first
    verdicts = b"".join(struct.pack("<BQQ", k, 0, 0) for k in range(3))
    figures = struct.pack("<BQQIIIII", 1, 4096, 8192, 2, 0, 0, 0, 0)
    ordinary += struct.pack("<B", 9) + verdicts + figures + struct.pack("<QQ", 3, 10)
    write(out, "report", "ordinary", ordinary + struct.pack("<B", 11) + b"\0" + struct.pack("<Q", 9))
    extreme = identify + allocate(0, 0xFFFF_FFFF_FFFF_F000, 1 << 16) + allocate(0, 1 << 56, 1 << 56)
    extreme += allocate(2, 0, 0xFFFF_FFFF_FFFF_FFFF) + allocate(0, 0x10, 0, 7, (0xFFFF_FFFF_FFFF_FFFF,) * 3, -1, 0xFFFF_FFFF_FFFF_FFFF)
    write(out, "report", "extreme", extreme + struct.pack("<BQ", 12, 0xFFFF_FFFF_FFFF_FFFF))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    vmlinux = sys.argv[2] if len(sys.argv) > 2 else "guest-images/build/default/vmlinux"
    program = sys.argv[3] if len(sys.argv) > 3 else "guest-images/build/default/guest-bin/lv-hello"
    page_walker_seeds(out)
    virtio_seeds(out)
    control_seeds(out)
    report_seeds(out)
    write(out, "kernel-view", "baseline", b"\0")
    write(out, "kernel-view", "second-thread-loops", b"\0" + struct.pack("<BHBQ", 2 | 12, 0, 0, 0))
    write(out, "orc", "empty-layout", bytes(9) + bytes(16))
    write(out, "btf", "header-only", struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1) + b"\0")
    if os.path.exists(program):
        with open(program, "rb") as f:
            elf = f.read(64 << 10)
        write(out, "elf-segments", os.path.basename(program), struct.pack("<Q", 0x40_0000 + (64 << 10)) + elf)
    if not os.path.exists(vmlinux):
        print(f"fuzz-seeds: {vmlinux} not found; only hand-made seeds written", file=sys.stderr)
        return
    with open(vmlinux, "rb") as f:
        data = f.read()
    kernel = ELF(data)
    btf_bytes = kernel.sections[".BTF"][1]
    btf = BTF(btf_bytes)
    write(out, "btf", "kernel-layout-types", btf.reduced(LAYOUT_ROOTS))
    write(out, "btf", "orc-entry-only", btf.reduced(["orc_entry"]))
    segments = [(o, v, s) for o, v, s in kernel.load_segments() if v >= HIGH_HALF]
    low = min(v for _, v, _ in segments)
    image = bytearray(max(v + s for _, v, s in segments) - low)
    for offset, vaddr, size in segments:
        image[vaddr - low:vaddr - low + size] = data[offset:offset + size]
    write(out, "kallsyms", "first-symbols", kallsyms_seed(bytes(image), low))
    if ".orc_unwind_ip" in kernel.sections and ".orc_unwind" in kernel.sections:
        ip_address, ips = kernel.sections[".orc_unwind_ip"]
        entries = kernel.sections[".orc_unwind"][1]
        size = len(entries) // (len(ips) // 4)
        sp_reg, bp_reg, kind = (btf.member_bits("orc_entry", m) for m in ("sp_reg", "bp_reg", "type"))
        end = btf.member_bits("orc_entry", "end")
        flags_byte = sp_reg[0] // 8
        layout = [size, 0, 2, flags_byte, sp_reg[0] - 8 * flags_byte, bp_reg[0] - 8 * flags_byte,
                  kind[0] - 8 * flags_byte, kind[1], end[0] - 8 * flags_byte if end else -128]
        count = 256
        write(out, "orc", "first-entries", struct.pack("<9bQI", *layout, ip_address, 4 * count)
              + ips[:4 * count] + entries[:size * count])


if __name__ == "__main__":
    main()
