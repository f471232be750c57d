/// The first instruction of a guest exception handler, when it is one the monitor can perform
/// itself to let the guest handle an exception its breakpoint stopped (no single step, no
/// breakpoint removed): NOPs, `endbr64`, `clac` and `cld`, which Linux's entry code starts with. Pure.
public struct GateEntryInstruction: Equatable, Sendable {
    public let length: Int
    /// RFLAGS bits the instruction clears (AC for `clac`, DF for `cld`).
    public let clearedFlags: UInt64

    public init(length: Int, clearedFlags: UInt64) {
        self.length = length
        self.clearedFlags = clearedFlags
    }

    /// Decodes `bytes` (at least the instruction's); nil for anything else.
    public init?(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return nil }
        switch first {
        case 0x90: (length, clearedFlags) = (1, 0)
        case 0xFC: (length, clearedFlags) = (1, 1 << 10)
        case 0x0F where bytes.count >= 3 && bytes[1] == 0x01 && bytes[2] == 0xCA: (length, clearedFlags) = (3, 1 << 18)
        case 0x0F where bytes.count >= 3 && bytes[1] == 0x1F:
            guard let size = Self.nopLength(modrm: bytes[2], rest: bytes.dropFirst(3)) else { return nil }
            (length, clearedFlags) = (2 + size, 0)
        case 0xF3 where bytes.starts(with: [0xF3, 0x0F, 0x1E, 0xFA]): (length, clearedFlags) = (4, 0)
        case 0x66 where bytes.count >= 4 && bytes[1] == 0x0F && bytes[2] == 0x1F:
            guard let size = Self.nopLength(modrm: bytes[3], rest: bytes.dropFirst(4)) else { return nil }
            (length, clearedFlags) = (3 + size, 0)
        default: return nil
        }
    }

    /// Length of the ModRM operand of `nopl` (`0f 1f /0`): ModRM, SIB and displacement bytes.
    private static func nopLength(modrm: UInt8, rest: ArraySlice<UInt8>) -> Int? {
        guard (modrm >> 3) & 7 == 0 else { return nil }
        let mod = modrm >> 6, rm = modrm & 7
        if mod == 3 { return 1 }
        var size = 1
        if rm == 4 {
            size += 1
            guard let sib = rest.first else { return nil }
            if mod == 0 && sib & 7 == 5 { size += 4 }
        }
        switch mod {
        case 0 where rm == 5: size += 4
        case 1: size += 1
        case 2: size += 4
        default: break
        }
        return size
    }
}
