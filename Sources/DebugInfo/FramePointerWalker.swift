/// Follows the x86-64 `rbp` chain (`[rbp]` = caller's `rbp`, `[rbp+8]` = return address) where libdw
/// gave up. Each step must move up the stack: `rbp` 8-aligned, at or above the frame's stack pointer,
/// above the previous `rbp`; the return address must lie in known code.
struct FramePointerWalker {
    /// Reads 8 bytes; nil when unreadable.
    let read: (UInt64) -> UInt64?
    /// Whether an address is inside a reported module (return addresses elsewhere end the walk).
    let isCode: (UInt64) -> Bool

    /// Why the walk ended.
    enum End: Equatable {
        /// The collector stopped it (frame limit, no progress).
        case collectorStopped
        /// `rbp` or a return address of 0: the conventional end of the chain.
        case outermost
        /// The chain is unusable from here; the reason.
        case broken(String)
    }

    /// Walks up from `start` (the last frame found), adding `.framePointer` frames to `collector`.
    func walk(from start: StackFrame, into collector: FrameCollector) -> End {
        guard var frameBase = start.framePointer else { return .broken("rbp unknown in the last frame") }
        var stackPointer = start.stackPointer
        var previousBase: UInt64?
        while true {
            if frameBase == 0 { return .outermost }
            guard frameBase % 8 == 0 else { return .broken("rbp \(hex(frameBase)) is not 8-byte aligned") }
            guard frameBase <= UInt64.max - 16 else { return .broken("rbp \(hex(frameBase)) at the top of memory") }
            if let previousBase, frameBase <= previousBase {
                return .broken("rbp \(hex(frameBase)) does not move up the stack")
            }
            if let stackPointer, frameBase < stackPointer {
                return .broken("rbp \(hex(frameBase)) is below the stack pointer \(hex(stackPointer))")
            }
            guard let savedBase = read(frameBase), let returnAddress = read(frameBase + 8) else {
                return .broken("cannot read the frame record at \(hex(frameBase))")
            }
            if returnAddress == 0 { return .outermost }
            guard isCode(returnAddress &- 1) else {
                return .broken("return address \(hex(returnAddress)) is outside every module")
            }
            let frame = StackFrame(
                pc: returnAddress, isActivation: false, method: .framePointer, stackPointer: frameBase + 16,
                framePointer: savedBase)
            guard collector.accept(frame) else { return .collectorStopped }
            previousBase = frameBase
            stackPointer = frameBase + 16
            frameBase = savedBase
        }
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
