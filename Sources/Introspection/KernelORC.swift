import BTF
/// The kernel's ORC unwind tables (`.orc_unwind_ip`, `.orc_unwind`), which let the monitor unwind
/// kernel stacks exactly (Debian builds with CONFIG_UNWINDER_ORC, not frame pointers). Entry
/// layout from BTF (`struct orc_entry`); its type numbering from the width of `type` (2 bits before
/// Linux 6.3, 3 bits after). Addresses are link-time.
public struct KernelORC: Sendable {
    /// One decoded `orc_entry`.
    public struct Entry: Sendable, Equatable {
        public var spOffset: Int16
        public var bpOffset: Int16
        public var spRegister: UInt8
        public var bpRegister: UInt8
        public var kind: Kind
    }

    public enum Kind: Sendable, Equatable { case call, registers, partialRegisters, end, undefined }

    /// `ORC_REG_*`.
    enum Register {
        static let undefined: UInt8 = 0, previousSP: UInt8 = 1, bp: UInt8 = 4, sp: UInt8 = 5
        static let bpIndirect: UInt8 = 8, spIndirect: UInt8 = 9
    }

    let ips: [UInt64]
    let entries: [Entry]

    public var count: Int { ips.count }

    /// Decodes the two sections. `ipSection` holds s32 offsets relative to each slot's own address.
    public init(ipSection: [UInt8], ipAddress: UInt64, entrySection: [UInt8], layout: KernelLayout.ORCEntry) throws(IntrospectionError) {
        let count = ipSection.count / 4
        guard Self.isPlausible(layout) else { throw .kernelImage("orc_entry layout from BTF does not fit its \(layout.size) bytes") }
        guard entrySection.count / layout.size == count, count > 0 else {
            throw .kernelImage("ORC tables disagree: \(count) addresses, \(entrySection.count) bytes of entries")
        }
        var ips: [UInt64] = []
        ips.reserveCapacity(count)
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        func u16(_ at: Int) -> UInt16 { UInt16(entrySection[at]) | UInt16(entrySection[at + 1]) << 8 }
        func bits(_ base: Int, _ bitOffset: Int, _ width: Int) -> UInt8 {
            var word: UInt32 = 0
            for i in 0..<4 where base + i < entrySection.count { word |= UInt32(entrySection[base + i]) << (8 * i) }
            return UInt8(truncatingIfNeeded: (word >> UInt32(bitOffset)) & ((1 << UInt32(width)) - 1))
        }
        for i in 0..<count {
            let raw = Int32(bitPattern: UInt32(ipSection[4 * i]) | UInt32(ipSection[4 * i + 1]) << 8
                                        | UInt32(ipSection[4 * i + 2]) << 16 | UInt32(ipSection[4 * i + 3]) << 24)
            ips.append(ipAddress &+ UInt64(4 * i) &+ UInt64(bitPattern: Int64(raw)))
            let e = i * layout.size
            let type = bits(e + layout.flagsByte, layout.typeBit, layout.typeWidth)
            let end = layout.endBit.map { bits(e + layout.flagsByte, $0, 1) == 1 } ?? false
            let kind: Kind
            if layout.typeWidth >= 3 {
                kind = [0: .undefined, 1: .end, 2: .call, 3: .registers, 4: .partialRegisters][type] ?? .undefined
            } else {
                kind = end ? .end : [0: .call, 1: .registers, 2: .partialRegisters][type] ?? .undefined
            }
            entries.append(Entry(spOffset: Int16(bitPattern: u16(e + layout.spOffset)),
                                 bpOffset: Int16(bitPattern: u16(e + layout.bpOffset)),
                                 spRegister: bits(e + layout.flagsByte, layout.spRegisterBit, 4),
                                 bpRegister: bits(e + layout.flagsByte, layout.bpRegisterBit, 4), kind: kind))
        }
        // The kernel sorts the table at build time; a crafted file may not be sorted.
        guard zip(ips, ips.dropFirst()).allSatisfy({ $0 <= $1 }) else { throw .kernelImage("ORC address table is not sorted") }
        self.ips = ips
        self.entries = entries
    }

    /// Whether every field of an `orc_entry` layout (from the image's own BTF, so untrusted) lies
    /// inside the entry: 16-bit offsets, and bit fields inside the 32 bits read from the flags byte.
    static func isPlausible(_ layout: KernelLayout.ORCEntry) -> Bool {
        let size = layout.size
        guard size >= 1, size <= 64, layout.flagsByte >= 0, layout.flagsByte < size else { return false }
        let flagBits = min(32, 8 * (size - layout.flagsByte))
        func fits(_ bit: Int, _ width: Int) -> Bool { bit >= 0 && width >= 1 && width <= 8 && bit + width <= flagBits }
        return [layout.spOffset, layout.bpOffset].allSatisfy { $0 >= 0 && $0 <= size - 2 }
            && fits(layout.spRegisterBit, 4) && fits(layout.bpRegisterBit, 4) && fits(layout.typeBit, layout.typeWidth)
            && (layout.endBit.map { fits($0, 1) } ?? true)
    }

    /// The entry covering link-time address `ip` (the last one at or below it).
    public func entry(for ip: UInt64) -> Entry? {
        var low = 0, high = ips.count
        while low < high {
            let mid = (low + high) / 2
            if ips[mid] <= ip { low = mid + 1 } else { high = mid }
        }
        return low > 0 ? entries[low - 1] : nil
    }
}
