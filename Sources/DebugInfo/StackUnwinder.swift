import CElfDW

/// Unwinds one thread of the address space described by a `Symbolizer`, with libdwfl's unwinder fed
/// by a caller-supplied memory reader (guest memory) and the thread's registers.
///
/// libdw unwinds with CFI where the module has it and otherwise guesses from `rbp`; if it stops with
/// an error, the walk continues along the `rbp` chain with stricter checks. Every unwind is bounded:
/// at most `maximumFrames` frames and `maximumMemoryReads` reads, and it ends when a frame does not
/// move up the stack. Shares the symbolizer's libdwfl session: use both from one thread at a time.
public final class StackUnwinder {
    public let symbolizer: Symbolizer
    public let maximumFrames: Int
    public let maximumMemoryReads: Int
    private let attachment: UnwindAttachment

    public init(symbolizer: Symbolizer, maximumFrames: Int = 128, maximumMemoryReads: Int = 100_000)
        throws(DebugInfoError)
    {
        self.symbolizer = symbolizer
        self.maximumFrames = max(1, maximumFrames)
        self.maximumMemoryReads = max(0, maximumMemoryReads)
        attachment = try symbolizer.session.attachedUnwindState()
    }

    /// The frames of the thread whose registers are `registers`, innermost first. `readMemory`
    /// returns the 8 bytes at an address of the thread's address space, or nil if unreadable; it is
    /// called only during this call.
    public func unwind(registers: RegisterSet, readMemory: (UInt64) -> UInt64?) -> Backtrace {
        let session = symbolizer.session
        let context = attachment.context
        let collector = FrameCollector(limit: maximumFrames)
        context.begin(registers: registers, readLimit: maximumMemoryReads)
        return withoutActuallyEscaping(readMemory) { reader in
            context.reader = reader
            defer { context.reader = nil }
            // SAFETY: the unretained collector pointer is used only by collectFrame during this call, which keeps the collector alive.
            let result = withExtendedLifetime(collector) {
                dwfl_getthread_frames(
                    session.dwfl, unwindThreadID, collectFrame, Unmanaged.passUnretained(collector).toOpaque())
            }
            let libdwReason = result == -1 ? dwflMessage() : nil
            classifyLibdwFrames(collector, session: session)
            if result == 0 { collector.finish(.outermostFrame) }
            if context.readLimitReached { collector.finish(.readLimit) }
            if let libdwReason, let last = collector.frames.last {
                continueWithFramePointers(from: last, collector: collector, libdwReason: libdwReason, session: session)
            }
            if context.readLimitReached { collector.finish(.readLimit) }
            collector.finish(.unwindFailed(libdwReason ?? "no frames"))
            return Backtrace(frames: collector.frames, stop: collector.stop ?? .outermostFrame)
        }
    }

    /// Marks each frame libdw found as CFI- or frame-pointer-unwound, by whether the frame below it
    /// had CFI (libdw tries CFI first and guesses from `rbp` only without it).
    private func classifyLibdwFrames(_ collector: FrameCollector, session: DwflSession) {
        for index in collector.frames.indices.dropFirst() {
            let below = collector.frames[index - 1]
            let method: FrameMethod = session.hasCallFrameInformation(at: below.lookupAddress) ? .cfi : .framePointer
            collector.setMethod(method, at: index)
        }
    }

    private func continueWithFramePointers(
        from last: StackFrame, collector: FrameCollector, libdwReason: String, session: DwflSession
    ) {
        guard collector.stop == nil else { return }
        let context = attachment.context
        let walker = FramePointerWalker(
            read: { context.readWord(at: $0) },
            isCode: { session.moduleCount == 0 || session.module(containing: $0) != nil })
        switch walker.walk(from: last, into: collector) {
        case .collectorStopped: break
        case .outermost: collector.finish(.outermostFrame)
        case .broken(let why):
            if context.readLimitReached { collector.finish(.readLimit) }
            collector.finish(.unwindFailed("\(libdwReason); frame pointers: \(why)"))
        }
    }
}

/// `dwfl_getthread_frames` callback: records one frame in the `FrameCollector` passed as `argument`.
private func collectFrame(_ frame: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let frame, let argument else { return Int32(DWARF_CB_ABORT) }
    // SAFETY: `argument` is the collector StackUnwinder passes unretained and keeps alive for the whole walk.
    let collector = Unmanaged<FrameCollector>.fromOpaque(argument).takeUnretainedValue()
    var pc: Dwarf_Addr = 0
    var isActivation = false
    guard dwfl_frame_pc(frame, &pc, &isActivation) else {
        collector.finish(.unwindFailed("no pc in frame \(collector.frames.count): \(dwflMessage())"))
        return Int32(DWARF_CB_ABORT)
    }
    var stackPointer: Dwarf_Word = 0
    var framePointer: Dwarf_Word = 0
    let hasStackPointer = dwfl_frame_reg(frame, RegisterSet.dwarfStackPointer, &stackPointer) == 0
    let hasFramePointer = dwfl_frame_reg(frame, RegisterSet.dwarfFramePointer, &framePointer) == 0
    let record = StackFrame(
        pc: pc, isActivation: isActivation, method: collector.frames.isEmpty ? .initial : .cfi,
        stackPointer: hasStackPointer ? stackPointer : nil, framePointer: hasFramePointer ? framePointer : nil)
    return collector.accept(record) ? Int32(DWARF_CB_OK) : Int32(DWARF_CB_ABORT)
}
