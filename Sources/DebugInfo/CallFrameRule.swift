/// How to find a caller's frame at one code address, the part of DWARF CFI a stack walk needs on
/// x86-64 (as Linux's ORC and the OpenTelemetry eBPF profiler's stack deltas keep it): the
/// canonical frame address (CFA) as `rsp` or `rbp` plus an offset, where the return address and
/// the caller's `rbp` are saved relative to it.
public struct CallFrameRule: Sendable, Hashable {
    /// The register the CFA is computed from.
    public enum Base: UInt8, Sendable, Hashable {
        case stackPointer, framePointer
    }

    public var base: Base
    public var cfaOffset: Int32
    /// Where the return address is saved, relative to the CFA (−8 in every ordinary frame); nil
    /// where CFI marks it undefined: the outermost frame (`_start`, a thread's start).
    public var returnAddress: Int32?
    /// Where the caller's `rbp` is saved, relative to the CFA; nil when this frame has not changed it.
    public var savedFramePointer: Int32?

    public init(base: Base, cfaOffset: Int32, returnAddress: Int32? = -8, savedFramePointer: Int32? = nil) {
        self.base = base
        self.cfaOffset = cfaOffset
        self.returnAddress = returnAddress
        self.savedFramePointer = savedFramePointer
    }

    /// A function's first instruction: the CFA is `rsp + 8` and the return address at `rsp`.
    public static let functionEntry = CallFrameRule(base: .stackPointer, cfaOffset: 8)
}

/// One run of code addresses (file offsets of the ELF file) that share a `CallFrameRule`.
public struct CallFrameRow: Sendable, Equatable {
    public var start: UInt64
    public var length: UInt32
    public var rule: CallFrameRule

    public init(start: UInt64, length: UInt32, rule: CallFrameRule) {
        self.start = start
        self.length = length
        self.rule = rule
    }

    public var end: UInt64 { start &+ UInt64(length) }
}
