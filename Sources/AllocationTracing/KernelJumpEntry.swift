/// One entry of the kernel's `__jump_table` (x86-64, `CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE`):
/// `struct jump_entry { s32 code; s32 target; long key; }`, each field relative to its own
/// address; the key's low two bits are flags (bit 0: the branch's default is taken, bit 1: the
/// site is in init text, freed after boot). Decoded from 16 bytes read at `address`, with
/// wrapping arithmetic (the bytes come from the guest).
struct KernelJumpEntry: Sendable, Equatable {
    static let size = 16

    /// Address of the jump site (the 2- or 5-byte nop or jmp).
    let code: UInt64
    /// Where the site jumps when the branch is taken (the out-of-line block).
    let target: UInt64
    /// Address of the `struct static_key` the site belongs to.
    let key: UInt64
    /// `JUMP_TYPE_TRUE`: the site's default (key disabled) is the jump.
    let defaultsToJump: Bool
    /// The site lies in init text, freed after boot: never patched.
    let inInitText: Bool

    init(bytes: [UInt8], at address: UInt64) {
        func s32(_ at: Int) -> Int64 {
            Int64(Int32(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24))
        }
        var raw: UInt64 = 0
        for i in 0..<8 { raw |= UInt64(bytes[8 + i]) << (8 * UInt64(i)) }
        code = address &+ UInt64(bitPattern: s32(0))
        target = (address &+ 4) &+ UInt64(bitPattern: s32(4))
        key = (address &+ 8) &+ (raw & ~3)
        defaultsToJump = raw & 1 != 0
        inInitText = raw & 2 != 0
    }

    /// Decodes a whole table read from `start`; trailing bytes short of an entry are ignored.
    static func table(_ bytes: [UInt8], start: UInt64) -> [KernelJumpEntry] {
        stride(from: 0, to: bytes.count - size + 1, by: size).map { offset in
            KernelJumpEntry(bytes: Array(bytes[offset..<offset + size]), at: start &+ UInt64(offset))
        }
    }
}

/// The instructions of a jump-label site as `arch/x86/kernel/jump_label.c` writes them: the
/// x86 nop of the site's size while the branch is not taken, `jmp` to the target while it is.
enum JumpLabelCode {
    static let nop2: [UInt8] = [0x66, 0x90]
    static let nop5: [UInt8] = [0x0F, 0x1F, 0x44, 0x00, 0x00]

    /// The site's size read from its current bytes, as the kernel decodes it (2 or 5), nil when
    /// they are neither a nop nor a jmp of either size.
    static func size(of bytes: [UInt8]) -> Int? {
        if bytes.starts(with: nop5) || bytes.first == 0xE9 { return 5 }
        if bytes.starts(with: nop2) || bytes.first == 0xEB { return 2 }
        return nil
    }

    /// The nop of `size` bytes.
    static func nop(size: Int) -> [UInt8]? {
        switch size {
        case 2: return nop2
        case 5: return nop5
        default: return nil
        }
    }

    /// `jmp target` encoded at `code` in `size` bytes (EB rel8 or E9 rel32), nil when the target
    /// is out of that size's reach.
    static func jump(from code: UInt64, to target: UInt64, size: Int) -> [UInt8]? {
        let displacement = Int64(bitPattern: target &- (code &+ UInt64(size)))
        switch size {
        case 2:
            guard let rel = Int8(exactly: displacement) else { return nil }
            return [0xEB, UInt8(bitPattern: rel)]
        case 5:
            guard let rel = Int32(exactly: displacement) else { return nil }
            let bits = UInt32(bitPattern: rel)
            return [0xE9, UInt8(truncatingIfNeeded: bits), UInt8(truncatingIfNeeded: bits >> 8),
                    UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 24)]
        default:
            return nil
        }
    }
}
