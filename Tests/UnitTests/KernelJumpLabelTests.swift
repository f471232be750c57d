@testable import AllocationTracing
import Testing

/// Decoding the kernel's relative `__jump_table` entries and encoding the jump-label sites'
/// instructions as arch/x86/kernel/jump_label.c writes them.
struct KernelJumpLabelTests {
    static func entry(code: Int32, target: Int32, key: Int64) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        return le(code) + le(target) + le(key)
    }

    @Test func entriesAreRelativeToEachField() {
        let start: UInt64 = 0xFFFF_FFFF_8300_0000
        // Entry 0: site 0x100 below, target 0x80 below the target field, key 0x10_0000 above the key field, default not taken.
        // Entry 1: the same key with bit 0 (default taken), entry 2 with bit 1 (init text).
        let bytes = Self.entry(code: -0x100, target: -0x80, key: 0x10_0000) + Self.entry(code: -0x100, target: 0x40, key: 0x10_0000 | 1)
            + Self.entry(code: 4, target: 8, key: 0x20_0000 | 2) + [0, 0, 0]
        let entries = KernelJumpEntry.table(bytes, start: start)
        #expect(entries.count == 3)
        #expect(entries[0].code == start - 0x100 && entries[0].target == start + 4 - 0x80 && entries[0].key == start + 8 + 0x10_0000)
        #expect(!entries[0].defaultsToJump && !entries[0].inInitText)
        #expect(entries[1].code == start + 16 - 0x100 && entries[1].key == start + 24 + 0x10_0000 && entries[1].defaultsToJump)
        #expect(entries[2].inInitText && !entries[2].defaultsToJump && entries[2].key == start + 40 + 0x20_0000)
    }

    @Test func hostileEntriesWrapInsteadOfTrapping() {
        let entries = KernelJumpEntry.table(Self.entry(code: Int32.max, target: Int32.min, key: Int64.max), start: UInt64.max - 4)
        #expect(entries.count == 1)
        #expect(entries[0].code == (UInt64.max - 4) &+ UInt64(Int32.max))
        #expect(KernelJumpEntry.table([1, 2, 3], start: 0).isEmpty)
    }

    @Test func jumpsAreEncodedForTheSiteSize() {
        let code: UInt64 = 0xFFFF_FFFF_8120_0000
        #expect(JumpLabelCode.jump(from: code, to: code + 0x42, size: 2) == [0xEB, 0x40])
        #expect(JumpLabelCode.jump(from: code, to: code - 0x10, size: 2) == [0xEB, 0xEE])
        #expect(JumpLabelCode.jump(from: code, to: code + 0x200, size: 2) == nil)
        #expect(JumpLabelCode.jump(from: code, to: code + 0x1_0005, size: 5) == [0xE9, 0x00, 0x00, 0x01, 0x00])
        #expect(JumpLabelCode.jump(from: code, to: code - 0x1000, size: 5) == [0xE9, 0xFB, 0xEF, 0xFF, 0xFF])
        #expect(JumpLabelCode.jump(from: code, to: code &+ 0x1_0000_0000, size: 5) == nil)
        #expect(JumpLabelCode.jump(from: code, to: code, size: 3) == nil)
    }

    @Test func siteSizesAreReadFromTheirBytes() {
        #expect(JumpLabelCode.size(of: [0x0F, 0x1F, 0x44, 0x00, 0x00]) == 5)
        #expect(JumpLabelCode.size(of: [0x66, 0x90, 0xCC, 0xCC, 0xCC]) == 2)
        #expect(JumpLabelCode.size(of: [0xE9, 1, 2, 3, 4]) == 5)
        #expect(JumpLabelCode.size(of: [0xEB, 5, 0, 0, 0]) == 2)
        #expect(JumpLabelCode.size(of: [0x90, 0x90, 0x90, 0x90, 0x90]) == nil)
    }
}
