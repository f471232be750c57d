/// Where an exiting thread's live stack begins: the stack pointer at the entry of libc's `exit`
/// (LeakSanitizer's rule: frames below it, those of `exit`'s own callees such as
/// `__run_exit_handlers` and whatever dead callees left there, are not roots).
///
/// Found without frame pointers or unwind tables: `exit` never returns and calls
/// `__run_exit_handlers` once, so the first word above the stack pointer at `exit_group` that is a
/// return address into `exit` is the slot of that call; `exit`'s entry stack pointer lies above it by
/// 8 (the slot) plus what `exit`'s prologue took (`FunctionPrologue.stackBytes`).
public struct ExitFrame: Sendable, Equatable {
    /// The code of `exit` in this process (one range per object that defines it).
    public var exitCode: Range<UInt64>
    /// Bytes `exit`'s prologue moves the stack pointer down before its first call.
    public var prologueBytes: UInt64

    public init(exitCode: Range<UInt64>, prologueBytes: UInt64) {
        self.exitCode = exitCode
        self.prologueBytes = prologueBytes
    }

    /// The most stack words searched above the stack pointer (`__run_exit_handlers`' frame and the
    /// exit handlers still running are small; a handler deep in a library stays within this).
    public static let searchWords = 8192

    /// `exit`'s entry stack pointer, from the words of the stack starting at `stackPointer`
    /// (8-byte aligned, ascending); nil when no return address into `exit` is among them.
    public func entryStackPointer(stackPointer: UInt64, words: [UInt64]) -> UInt64? {
        for (i, word) in words.prefix(Self.searchWords).enumerated() {
            // A return address follows a call, so it is after exit's first byte and at most its end.
            guard word > exitCode.lowerBound, word <= exitCode.upperBound else { continue }
            let (slot, o1) = stackPointer.addingReportingOverflow(UInt64(i) * 8)
            let (entry, o2) = slot.addingReportingOverflow(8 &+ prologueBytes)
            return o1 || o2 ? nil : entry
        }
        return nil
    }
}

/// The stack a function's prologue takes before its first call, from its first bytes: `endbr64`,
/// `push r64`, `sub rsp, imm8/imm32`, and instructions that leave rsp alone (`mov r32, imm32`,
/// `lea r64, [rip + disp32]`, `mov r64, r64`, `xor r32, r32`) are understood; decoding stops at the
/// first `call` or anything else.
public enum FunctionPrologue {
    public static func stackBytes(_ code: [UInt8]) -> UInt64 {
        var i = 0, total: UInt64 = 0
        func byte(_ k: Int) -> UInt8? { i + k < code.count ? code[i + k] : nil }
        while i < code.count, total < 1 << 20 {
            guard let b0 = byte(0) else { break }
            if b0 == 0xF3, byte(1) == 0x0F, byte(2) == 0x1E, byte(3) == 0xFA { i += 4; continue }      // endbr64
            if (0x50...0x57).contains(b0) { total += 8; i += 1; continue }                                // push r64
            if b0 == 0x41, let b1 = byte(1), (0x50...0x57).contains(b1) { total += 8; i += 2; continue } // push r8-r15
            if b0 == 0x48, byte(1) == 0x83, byte(2) == 0xEC, let imm = byte(3) {                          // sub rsp, imm8
                total += UInt64(imm); i += 4; continue
            }
            if b0 == 0x48, byte(1) == 0x81, byte(2) == 0xEC, let a = byte(3), let b = byte(4), let c = byte(5), let d = byte(6) {
                let imm = UInt64(a) | UInt64(b) << 8 | UInt64(c) << 16 | UInt64(d) << 24                  // sub rsp, imm32
                guard imm < 1 << 20 else { break }
                total += imm; i += 7; continue
            }
            if (0xB8...0xBF).contains(b0) { i += 5; continue }                                            // mov r32, imm32
            if b0 == 0x41, let b1 = byte(1), (0xB8...0xBF).contains(b1) { i += 6; continue }
            if b0 & 0xF8 == 0x48, byte(1) == 0x8D, let m = byte(2), m & 0xC7 == 0x05 { i += 7; continue } // lea r64, [rip+d32]
            if b0 & 0xF8 == 0x48, byte(1) == 0x89, let m = byte(2), m & 0xC0 == 0xC0, m & 7 != 4 { i += 3; continue } // mov r64, r64 (not to rsp)
            if b0 == 0x31, let m = byte(1), m & 0xC0 == 0xC0 { i += 2; continue }                         // xor r32, r32
            break
        }
        return total
    }
}
