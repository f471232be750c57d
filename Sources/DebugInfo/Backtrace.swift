/// How a frame of a backtrace was found.
public enum FrameMethod: Sendable, Equatable {
    /// The thread's registers (frame 0).
    case initial
    /// libdw unwound the frame below with its DWARF call frame information (`.eh_frame` /
    /// `.debug_frame`).
    case cfi
    /// Followed the `rbp` chain (`[rbp]` = caller's `rbp`, `[rbp+8]` = return address): libdw's own
    /// guess for code without CFI, or this module's fallback after libdw stopped.
    case framePointer
}

/// One frame of a backtrace.
public struct StackFrame: Sendable, Equatable {
    /// The frame's program counter: the interrupted instruction for frame 0, a return address above.
    public var pc: UInt64
    /// True when `pc` is the instruction being executed (frame 0, or a frame interrupted by a signal);
    /// false for return addresses, which point after the call.
    public var isActivation: Bool
    public var method: FrameMethod
    /// `rsp` in this frame (the caller's CFA), when known.
    public var stackPointer: UInt64?
    /// `rbp` in this frame, when known.
    public var framePointer: UInt64?

    public init(pc: UInt64, isActivation: Bool, method: FrameMethod, stackPointer: UInt64?, framePointer: UInt64?) {
        self.pc = pc
        self.isActivation = isActivation
        self.method = method
        self.stackPointer = stackPointer
        self.framePointer = framePointer
    }

    /// The address to symbolize: `pc`, or `pc − 1` for a return address so that it falls inside the
    /// call instruction (the call site's line, and the right function if the call was its last
    /// instruction).
    public var lookupAddress: UInt64 { isActivation ? pc : pc &- 1 }
}

/// Why an unwind ended.
public enum UnwindStop: Sendable, Equatable {
    /// The outermost frame: CFI marks the return address undefined (`_start`, thread entry) or the
    /// return address is 0.
    case outermostFrame
    /// The frame limit was reached.
    case frameLimit
    /// A frame did not move up the stack (same stack pointer as the frame below, or a repeated
    /// pc/stack pointer pair): the stack is corrupt or loops.
    case noProgress
    /// The memory-read budget ran out.
    case readLimit
    /// libdw could not unwind the last frame (no CFI and no usable frame pointer, unreadable
    /// stack) and the frame-pointer fallback could not continue; libdw's message.
    case unwindFailed(String)
}

/// The frames of one thread, innermost first, and why the walk ended.
public struct Backtrace: Sendable, Equatable {
    public var frames: [StackFrame]
    public var stop: UnwindStop

    public init(frames: [StackFrame], stop: UnwindStop) {
        self.frames = frames
        self.stop = stop
    }
}
