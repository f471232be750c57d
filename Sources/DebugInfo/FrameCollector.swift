/// Accumulates frames during one unwind and decides when to stop: frame limit, a frame that does
/// not move up the stack, a zero return address.
final class FrameCollector {
    private(set) var frames: [StackFrame] = []
    private(set) var stop: UnwindStop?
    private let limit: Int
    private var seen: Set<FrameKey> = []

    private struct FrameKey: Hashable {
        let pc: UInt64
        let stackPointer: UInt64?
    }

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Records `frame` unless it ends the walk; returns whether to continue.
    func accept(_ frame: StackFrame) -> Bool {
        guard stop == nil else { return false }
        if let previous = frames.last {
            if frame.pc == 0 {
                stop = .outermostFrame
                return false
            }
            if let sp = frame.stackPointer, sp == previous.stackPointer {
                stop = .noProgress
                return false
            }
        }
        guard seen.insert(FrameKey(pc: frame.pc, stackPointer: frame.stackPointer)).inserted else {
            stop = .noProgress
            return false
        }
        frames.append(frame)
        if frames.count >= limit {
            stop = .frameLimit
            return false
        }
        return true
    }

    /// Ends the walk for `reason` unless it already ended.
    func finish(_ reason: UnwindStop) {
        if stop == nil { stop = reason }
    }

    /// Replaces the method recorded for frame `index`.
    func setMethod(_ method: FrameMethod, at index: Int) {
        frames[index].method = method
    }
}
