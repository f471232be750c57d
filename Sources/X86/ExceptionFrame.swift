/// The frame a 64-bit exception pushes on the handler's stack, as words from the stack pointer
/// at the handler's first instruction: [error code,] rip, cs, rflags, rsp, ss.
public struct ExceptionFrame: Sendable, Equatable {
    public let errorCode: UInt64?
    public let rip: UInt64
    public let cs: UInt64
    public let rflags: UInt64
    public let rsp: UInt64
    public let ss: UInt64

    /// How many words to read for a frame with or without an error code.
    public static func wordCount(hasErrorCode: Bool) -> Int { hasErrorCode ? 6 : 5 }

    /// Decodes `words` (at least `wordCount(hasErrorCode:)` of them); nil if too few.
    public init?(_ words: [UInt64], hasErrorCode: Bool) {
        let base = hasErrorCode ? 1 : 0
        guard words.count >= base + 5 else { return nil }
        errorCode = hasErrorCode ? words[0] : nil
        (rip, cs, rflags, rsp, ss) = (words[base], words[base + 1], words[base + 2], words[base + 3], words[base + 4])
    }

    /// Whether the exception interrupted user-mode code (CPL 3).
    public var fromUserMode: Bool { cs & 3 == 3 }

    /// The interrupted code's registers: `current` (the general registers, unchanged by the
    /// exception's delivery) with rip, rsp and rflags from the frame; for #BP, a trap, rip back at
    /// the `int3` itself.
    public func interruptedRegisters(_ current: GeneralRegisters, breakpoint: Bool) -> GeneralRegisters {
        var registers = current
        registers.rip = breakpoint ? rip &- 1 : rip
        registers.rsp = rsp
        registers.rflags = rflags
        return registers
    }
}
