import GuestMemory

/// Why a guest-virtual address could not be translated.
public enum TranslationError: Error, Equatable, Sendable {
    case notPresent(GuestVirtualAddress, level: Int)
    case nonCanonical(GuestVirtualAddress)
    case tableOutsideMemory(GuestVirtualAddress, level: Int)
    case readFailed(GuestVirtualAddress)
}

/// Minimal x86-64 page walker (4- and 5-level, 4 KiB / 2 MiB / 1 GiB pages) over guest memory.
/// Used by the host policy to read the guest's IDT and exception frames.
public struct GuestPageWalker: Sendable {
    public let memory: GuestMemory
    public let cr3: UInt64
    public let fiveLevel: Bool

    public init(memory: GuestMemory, cr3: UInt64, cr4: UInt64) {
        self.memory = memory
        self.cr3 = cr3
        self.fiveLevel = cr4 & (1 << 12) != 0
    }

    public func translate(_ va: GuestVirtualAddress) throws(TranslationError) -> GuestPhysicalAddress {
        let v = va.rawValue
        let bits = fiveLevel ? 57 : 48
        let upper = Int64(bitPattern: v) >> (bits - 1)
        guard upper == 0 || upper == -1 else { throw .nonCanonical(va) }
        var table = cr3 & 0x000F_FFFF_FFFF_F000
        let levels = fiveLevel ? 5 : 4
        for level in stride(from: levels, through: 1, by: -1) {
            let shift = UInt64(12 + 9 * (level - 1))
            let index = (v >> shift) & 0x1FF
            let entryAddress = GuestPhysicalAddress(table + index * 8)
            guard let entry = try? memory.load(UInt64.self, at: entryAddress) else {
                throw .tableOutsideMemory(va, level: level)
            }
            guard entry & 1 == 1 else { throw .notPresent(va, level: level) }
            let frame = entry & 0x000F_FFFF_FFFF_F000
            if level == 1 || (level <= 3 && entry & 0x80 != 0) {
                let mask = (UInt64(1) << shift) - 1
                return GuestPhysicalAddress((frame & ~mask) | (v & mask))
            }
            table = frame
        }
        throw .notPresent(va, level: 0)
    }

    /// Reads a little-endian u64 at a guest-virtual address (must not straddle a page).
    public func load64(_ va: GuestVirtualAddress) throws(TranslationError) -> UInt64 {
        if va.rawValue & 0xFFF > 0xFF8 {
            let lo = try readBytes(va, count: 8)
            return lo.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        let pa = try translate(va)
        guard let v = try? memory.load(UInt64.self, at: pa) else { throw .readFailed(va) }
        return v
    }

    /// Reads bytes one page at a time.
    public func readBytes(_ va: GuestVirtualAddress, count: Int) throws(TranslationError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var cursor = va.rawValue
        while out.count < count {
            let inPage = min(count - out.count, Int(4096 - (cursor & 0xFFF)))
            let pa = try translate(GuestVirtualAddress(cursor))
            guard let chunk = try? memory.read(at: pa, count: inPage) else { throw .readFailed(GuestVirtualAddress(cursor)) }
            out += chunk
            cursor &+= UInt64(inPage)
        }
        return out
    }
}
