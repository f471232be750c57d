@testable import Introspection
@testable import Reachability
import X86
import Testing

/// The pure parts of the root rules: where an exiting thread's live stack begins, the stack a
/// prologue takes, and live heap blocks cut out of root ranges.
@Suite struct RootRulesTests {
    // glibc 2.36's exit: sub rsp, 8; mov ecx, 1; mov edx, 1; lea rsi, [rip + d]; call __run_exit_handlers.
    static let glibcExit: [UInt8] = [0x48, 0x83, 0xEC, 0x08, 0xB9, 0x01, 0, 0, 0, 0xBA, 0x01, 0, 0, 0,
                                     0x48, 0x8D, 0x35, 0xD3, 0xC2, 0x09, 0x00, 0xE8, 0x26, 0xFD, 0xFF, 0xFF]

    @Test func glibcExitsPrologueTakesEightBytes() {
        #expect(FunctionPrologue.stackBytes(Self.glibcExit) == 8)
        #expect(FunctionPrologue.stackBytes([0xF3, 0x0F, 0x1E, 0xFA, 0x55, 0x48, 0x89, 0xE5, 0x41, 0x54, 0x53, 0x48, 0x81, 0xEC, 0x10, 0x01, 0, 0, 0xE8])
                == 8 + 8 + 8 + 0x110)
        #expect(FunctionPrologue.stackBytes([]) == 0)
        #expect(FunctionPrologue.stackBytes([0xE8, 0, 0, 0, 0]) == 0)
        // Cut off mid-instruction, and a hostile huge immediate: never traps, never counts it.
        #expect(FunctionPrologue.stackBytes([0x48, 0x81, 0xEC, 0xFF]) == 0)
        #expect(FunctionPrologue.stackBytes([0x48, 0x81, 0xEC, 0xFF, 0xFF, 0xFF, 0xFF]) == 0)
        #expect(FunctionPrologue.stackBytes(Array(repeating: 0x50, count: 64)) == 512)
    }

    /// The stack at exit_group: _exit's frame, then __run_exit_handlers' frame with a stale copy of
    /// a leaked pointer, the return address into exit, exit's 8-byte slot, and the caller's return address.
    @Test func exitsEntryIsAboveTheReturnAddressIntoExit() {
        let exit = ExitFrame(exitCode: 0x408E20..<0x408E3A, prologueBytes: 8)
        let rsp: UInt64 = 0x7FFF_F000
        let words: [UInt64] = [0x4001, 0x7FFF_F100, 0x4C52A0 /* stale heap pointer */, 0, 0x408BC3 /* a return address elsewhere */,
                               0x408E3A /* return into exit */, 0x4C52A0 /* exit's junk slot */, 0x401C4B /* into __libc_start_call_main */]
        #expect(exit.entryStackPointer(stackPointer: rsp, words: words) == rsp + 7 * 8)
        // No return address into exit (killed by a signal, or _exit called directly): no entry.
        #expect(exit.entryStackPointer(stackPointer: rsp, words: [0x408E20, 0x408E3B, 0x1234]) == nil)
        // Hostile: a return address near the top of the address space does not wrap.
        #expect(exit.entryStackPointer(stackPointer: .max - 15, words: [0x408E25]) == nil)
    }

    @Test func aCachedThreadStackIsAnAnonymousMappingAboveAGuard() {
        func mapping(_ start: UInt64, _ end: UInt64, _ permissions: String, path: String = "", file: UInt64 = 0) -> GuestMapping {
            GuestMapping(start: start, end: end, permissions: permissions, fileOffset: 0, deviceMajor: 0, deviceMinor: 0, inode: 0,
                         path: path, fileObject: file)
        }
        let guard_ = mapping(0x7F00_0000_0000, 0x7F00_0000_1000, "---p")
        let stack = mapping(0x7F00_0000_1000, 0x7F00_0080_1000, "rw-p")
        #expect(ProcessRoots.isCachedThreadStack(stack, after: guard_))
        #expect(!ProcessRoots.isCachedThreadStack(stack, after: mapping(0x7F00_0000_0000, 0x7F00_0000_0800, "---p")))  // not adjacent
        #expect(!ProcessRoots.isCachedThreadStack(stack, after: mapping(0x7F00_0000_0000, 0x7F00_0000_1000, "r--p")))
        #expect(!ProcessRoots.isCachedThreadStack(stack, after: mapping(0x7F00_0000_0000, 0x7F00_0000_1000, "---p", path: "/lib/x", file: 1)))
        #expect(!ProcessRoots.isCachedThreadStack(mapping(0x7F00_0000_1000, 0x7F00_0080_1000, "rw-p", path: "[stack]"), after: guard_))
    }

    /// An 8 MiB cached stack the guest kernel merged with 3 pages of anonymous memory above it
    /// (measured with lsan-create-thread-leak: Linux 6.1 merges them, newer kernels do not). Present
    /// pages: a dead frame with a stale pointer, the page of the thread's `struct pthread`, and the
    /// main thread's TCB in the merged pages above. The roots are this thread's TLS and TCB up to the
    /// stack's top, and the merged pages; never the dead frame, never the main thread's TCB as this one's.
    @Test func aCachedStackMergedWithTheMappingAboveKeepsItsOwnTopAndThePagesAbove() {
        let start: UInt64 = 0x7FFF_F75D_2000, stackTop: UInt64 = 0x7FFF_F7DD_2000, end: UInt64 = 0x7FFF_F7DD_5000
        let threadPointer = stackTop - 0x940, mainThreadPointer: UInt64 = 0x7FFF_F7DD_2740
        var pages: [UInt64: [UInt64]] = [:]
        func put(_ value: UInt64, at address: UInt64) {
            pages[address & ~0xFFF, default: Array(repeating: 0, count: 512)][Int(address & 0xFFF) / 8] = value
        }
        put(0x7FFF_E800_0F60, at: stackTop - 0x1208)               // a stale pointer in a dead frame
        put(threadPointer, at: threadPointer); put(threadPointer, at: threadPointer + 16)
        put(mainThreadPointer, at: mainThreadPointer); put(mainThreadPointer, at: mainThreadPointer + 16)
        let roots = ProcessRoots()
        let found = roots.cachedThreadRoots(start..<end, threadLocalBytes: 0x90, readPage: { pages[$0] })
        #expect(found?.threadTop == (threadPointer - 0x100)..<stackTop)
        #expect(found?.above == stackTop..<end)
        // Not merged: the stack's own top ends the mapping, nothing above.
        let alone = roots.cachedThreadRoots(start..<stackTop, threadLocalBytes: 0x90, readPage: { pages[$0] })
        #expect(alone?.threadTop == (threadPointer - 0x100)..<stackTop && alone?.above == nil)
        // No thread pointer (not a glibc stack) or nothing readable: not taken for a cached stack.
        #expect(roots.cachedThreadRoots(start..<end, threadLocalBytes: 0x90, readPage: { _ in nil }) == nil)
        #expect(roots.cachedThreadRoots(0..<0x2000, threadLocalBytes: 0x90, readPage: { _ in Array(repeating: 0, count: 512) }) == nil)
        // Hostile: a mapping at the top of the address space and a short page never trap.
        #expect(roots.cachedThreadRoots((UInt64.max - 0x2FFF)..<UInt64.max, threadLocalBytes: .max, readPage: { _ in [0] }) == nil)
    }

    /// glibc 2.36 (measured: a thread's first malloc, its heap's first word is heap + 48).
    @Test func arenaHeapsOfGlibc235AndLaterAreRecognized() {
        #expect(ProcessRoots.isArenaPointer(0x7F55_2C00_0030))   // glibc ≥ 2.35: heap_info is 48 bytes
        #expect(ProcessRoots.isArenaPointer(0x7F55_2C00_0020))   // older glibc: 32 bytes
        #expect(!ProcessRoots.isArenaPointer(0x7F55_2C00_0040))
        #expect(!ProcessRoots.isArenaPointer(0xFFFF_8000_0000_0030))
    }

    @Test func blocksAreCutOutOfRootRanges() {
        let index = HeapBlockIndex(blocks: [(0x1000, 0x100), (0x1200, 0x10), (0x2000, 0x40000), (0x50000, 0)])
        #expect(index.uncovered(0x0..<0x3000) == [0x0..<0x1000, 0x1100..<0x1200, 0x1210..<0x2000])
        #expect(index.uncovered(0x1080..<0x1300) == [0x1100..<0x1200, 0x1210..<0x1300])
        #expect(index.uncovered(0x3000..<0x4000) == [])            // inside the big (mmapped) block
        #expect(index.uncovered(0x42000..<0x60000) == [0x42000..<0x60000])  // a zero-size block covers nothing
        #expect(index.uncovered(0x10..<0x10) == [])
        #expect(HeapBlockIndex(blocks: []).uncovered(0x10..<0x20) == [0x10..<0x20])
        // A hostile block whose end would wrap covers the rest of the range.
        #expect(HeapBlockIndex(blocks: [(.max - 8, 64)]).uncovered((.max - 32)..<(.max)) == [(.max - 32)..<(.max - 8)])
    }
}

/// Vector registers from XSAVE areas (the vCPU's standard form and the kernel's compacted one).
@Suite struct XSAVEAreaTests {
    static func area(size: Int = 832, present: UInt64, compacted: UInt64 = 0, xmm: [Int: UInt64] = [:], ymm: [Int: UInt64] = [:]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        func put(_ offset: Int, _ value: UInt64) {
            for k in 0..<8 where offset + k < size { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
        }
        put(512, present)
        put(520, compacted)
        for (word, value) in xmm { put(160 + 8 * word, value) }
        for (word, value) in ymm { put(576 + 8 * word, value) }
        return bytes
    }

    @Test func xmmAndYmmWordsWhenInUse() {
        let words = XSAVEArea.vectorRegisterWords(Self.area(present: 0b111, xmm: [10: 0x4C52A0], ymm: [31: 0x7F00_0000_1000]))
        #expect(words.count == 64)
        #expect(words[10] == 0x4C52A0)       // xmm5, low half
        #expect(words[63] == 0x7F00_0000_1000)
    }

    @Test func componentsInTheirInitialStateGiveNothing() {
        // Stale bytes where the registers are in their initial state (zero) are not roots.
        #expect(XSAVEArea.vectorRegisterWords(Self.area(present: 0b001, xmm: [0: 0x4C52A0], ymm: [0: 0x4C52A0])) == [])
        #expect(XSAVEArea.vectorRegisterWords(Self.area(present: 0b010, xmm: [0: 0x4C52A0], ymm: [0: 0x4C52A0])).count == 32)
    }

    @Test func compactedFormHasAVXAt576OnlyWhenStored() {
        let stored = Self.area(present: 0b110, compacted: 1 << 63 | 0b110, ymm: [0: 0x1234_5000])
        #expect(XSAVEArea.vectorRegisterWords(stored).count == 64)
        let absent = Self.area(present: 0b110, compacted: 1 << 63 | 0b010, ymm: [0: 0x1234_5000])
        #expect(XSAVEArea.vectorRegisterWords(absent).count == 32)
    }

    @Test func shortOrHostileAreasNeverTrap() {
        #expect(XSAVEArea.vectorRegisterWords([]) == [])
        #expect(XSAVEArea.vectorRegisterWords([UInt8](repeating: 0xFF, count: 519)) == [])
        // The header says everything is in use, but the area ends early: only what is there.
        #expect(XSAVEArea.vectorRegisterWords(Self.area(size: 600, present: .max)).count == 32 + 3)
        #expect(XSAVEArea.vectorRegisterWords([UInt8](repeating: 0xFF, count: 4096)).count == 64)
    }
}
