import CElfDW
import Glibc

extension CallFrameTable {
    /// The table of a host ELF file's `.eh_frame` (with `.debug_frame` where libdw finds one
    /// instead), read row by row with libdw (`dwarf_cfi_addrframe`) over each executable
    /// `PT_LOAD` segment; `.eh_frame_hdr`'s search table says where the next FDE starts after a
    /// gap. A rule the table cannot express (a CFA expression, a register saved by expression)
    /// leaves its addresses out: a walk there falls back to frame pointers. A file without CFI
    /// gives an empty table.
    public init(file: ELFFile) {
        self.init(rows: Self.rows(of: file))
    }

    private static func rows(of file: ELFFile) -> [CallFrameRow] {
        guard let cfi = dwarf_getcfi_elf(file.elf) else { return [] }
        defer { dwarf_cfi_end(cfi) }
        let starts = (try? file.section(named: ".eh_frame_hdr")).flatMap { $0.map(functionStarts) } ?? []
        var rows: [CallFrameRow] = []
        for segment in file.loadSegments where segment.isExecutable && segment.fileSize > 0 {
            let low = segment.virtualAddress, high = segment.virtualAddress &+ segment.fileSize
            var address = low
            while address < high {
                var frame: OpaquePointer?
                guard dwarf_cfi_addrframe(cfi, address, &frame) == 0, let frame else {
                    // A gap: on to the next FDE (or byte by byte without a search table).
                    address = nextStart(after: address, in: starts) ?? (starts.isEmpty ? address + 1 : high)
                    continue
                }
                defer { free(UnsafeMutableRawPointer(frame)) }
                var start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
                var signal = false
                guard dwarf_frame_info(frame, &start, &end, &signal) >= 0, end > address else {
                    address += 1
                    continue
                }
                let runStart = max(start, address), runEnd = min(end, high)
                if !signal, let rule = rule(frame), runEnd > runStart, runEnd - runStart <= UInt64(UInt32.max) {
                    rows.append(CallFrameRow(start: runStart - segment.virtualAddress + segment.offset,
                                             length: UInt32(runEnd - runStart), rule: rule))
                }
                address = end
            }
        }
        return rows
    }

    /// The rule of one libdw frame state, if the table can express it.
    private static func rule(_ frame: OpaquePointer) -> CallFrameRule? {
        var ops: UnsafeMutablePointer<Dwarf_Op>?
        var count = 0
        guard dwarf_frame_cfa(frame, &ops, &count) == 0, count == 1, let op = ops?.pointee else { return nil }
        let (stackPointer, framePointer) = (UInt64(RegisterSet.dwarfStackPointer), UInt64(RegisterSet.dwarfFramePointer))
        let base: CallFrameRule.Base, offset: Int64
        switch Int(op.atom) {
        case DW_OP_breg0 + Int(stackPointer): (base, offset) = (.stackPointer, Int64(bitPattern: op.number))
        case DW_OP_breg0 + Int(framePointer): (base, offset) = (.framePointer, Int64(bitPattern: op.number))
        case DW_OP_bregx where op.number == stackPointer: (base, offset) = (.stackPointer, Int64(bitPattern: op.number2))
        case DW_OP_bregx where op.number == framePointer: (base, offset) = (.framePointer, Int64(bitPattern: op.number2))
        default: return nil
        }
        guard let cfaOffset = Int32(exactly: offset) else { return nil }
        let returnAddress: Int32
        switch register(RegisterSet.dwarfReturnAddress, frame) {
        case .saved(let at)?: returnAddress = at
        case .undefined?: return CallFrameRule(base: base, cfaOffset: cfaOffset, returnAddress: nil)
        case .unchanged?, nil: return nil
        }
        switch register(RegisterSet.dwarfFramePointer, frame) {
        case .saved(let at)?: return CallFrameRule(base: base, cfaOffset: cfaOffset, returnAddress: returnAddress, savedFramePointer: at)
        case .unchanged?, .undefined?: return CallFrameRule(base: base, cfaOffset: cfaOffset, returnAddress: returnAddress)
        case nil: return nil
        }
    }

    private enum RegisterRule { case unchanged, undefined, saved(Int32) }

    /// Where CFI keeps a register of the caller: same value, undefined, or saved at CFA + n; nil for
    /// anything else (a value expression, another register).
    private static func register(_ number: UInt32, _ frame: OpaquePointer) -> RegisterRule? {
        var memory = (Dwarf_Op(), Dwarf_Op(), Dwarf_Op())
        return withUnsafeMutableBytes(of: &memory) { raw -> RegisterRule? in
            let buffer = raw.baseAddress!.assumingMemoryBound(to: Dwarf_Op.self)
            var ops: UnsafeMutablePointer<Dwarf_Op>?
            var count = 0
            guard dwarf_frame_register(frame, Int32(number), buffer, &ops, &count) == 0 else { return nil }
            guard count > 0, let ops else { return count == 0 ? (ops == nil ? .unchanged : .undefined) : nil }
            let list = (0..<count).map { ops[$0] }
            guard Int(list[0].atom) == DW_OP_call_frame_cfa else { return nil }
            let offset: Int64
            switch list.dropFirst().map({ Int($0.atom) }) {
            case []: offset = 0
            case [DW_OP_plus_uconst]: offset = Int64(bitPattern: list[1].number)
            case [DW_OP_consts, DW_OP_plus]: offset = Int64(bitPattern: list[1].number)
            default: return nil
            }
            return Int32(exactly: offset).map { .saved($0) }
        }
    }

    /// The first FDE start above `address`.
    private static func nextStart(after address: UInt64, in starts: [UInt64]) -> UInt64? {
        let low = partitionPoint(count: starts.count) { starts[$0] <= address }
        return low < starts.count ? starts[low] : nil
    }

    /// The function start addresses in `.eh_frame_hdr`'s binary search table, sorted; empty unless
    /// the table has the encoding every x86-64 linker writes (version 1, entries as
    /// `DW_EH_PE_datarel | DW_EH_PE_sdata4` pairs, the count as `udata4`).
    static func functionStarts(_ header: ELFSection) -> [UInt64] {
        functionStarts(header.bytes, sectionAddress: header.address)
    }

    static func functionStarts(_ bytes: [UInt8], sectionAddress: UInt64) -> [UInt64] {
        guard bytes.count >= 12, bytes[0] == 1, bytes[2] == 0x03, bytes[3] == 0x3B else { return [] }
        // eh_frame_ptr's size from its encoding (sdata4/udata4 are the linkers' choice).
        guard bytes[1] & 0x0F == 0x0B || bytes[1] & 0x0F == 0x03 else { return [] }
        func word(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        let count = Int(word(8))
        guard count <= (bytes.count - 12) / 8 else { return [] }
        return (0..<count).map { i in
            sectionAddress &+ UInt64(bitPattern: Int64(Int32(bitPattern: word(12 + i * 8))))
        }.sorted()
    }
}
