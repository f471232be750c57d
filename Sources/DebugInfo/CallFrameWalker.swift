/// Walks a user stack from a function's entry with `CallFrameRule`s, where they are known, and
/// along the `rbp` chain where they are not (code without CFI). Each step must move up the stack
/// and stay within `maximumStackBytes` of where the walk began; it ends at the outermost frame, at
/// an address that cannot be code, at an unreadable word or at the frame limit. Stack contents
/// come from the guest: nothing read is trusted beyond those checks.
public struct CallFrameWalker: Sendable {
    /// Frames to collect, the allocator's own included (valgrind's `--num-callers` counts the same way).
    public var maximumFrames: Int
    public var maximumStackBytes: UInt64 = 8 << 20

    public init(maximumFrames: Int) {
        self.maximumFrames = max(2, maximumFrames)
    }

    /// How each frame past the first two was found.
    public struct Counts: Sendable, Equatable {
        public var callFrameInformation = 0
        public var framePointer = 0
    }

    /// The stack of a call stopped at its function's first instruction `site`: the site, the
    /// return address (`[rsp]`), then the callers. `rule` gives the rule for a code address (the
    /// return address minus one, inside the call); `read` an 8-byte word of the stack.
    public func walk(site: UInt64, returnAddress: UInt64, stackPointer: UInt64, framePointer: UInt64,
                     rule: (UInt64) -> CallFrameRule?, read: (UInt64) -> UInt64?) -> (frames: [UInt64], counts: Counts) {
        var frames = [site, returnAddress]
        var counts = Counts()
        // The caller's registers when the allocator was entered: rsp past the return address.
        continueWalk(&frames, &counts, pc: returnAddress, exact: false, stackPointer: stackPointer &+ 8,
                     framePointer: framePointer, bottom: stackPointer, rule: rule, read: read)
        return (frames, counts)
    }

    /// The stack of a thread stopped anywhere: `pc` (whose rule is looked up at `pc` itself), then
    /// its callers.
    public func walk(pc: UInt64, stackPointer: UInt64, framePointer: UInt64,
                     rule: (UInt64) -> CallFrameRule?, read: (UInt64) -> UInt64?) -> (frames: [UInt64], counts: Counts) {
        var frames = [pc]
        var counts = Counts()
        continueWalk(&frames, &counts, pc: pc, exact: true, stackPointer: stackPointer, framePointer: framePointer,
                     bottom: stackPointer &- 1, rule: rule, read: read)
        return (frames, counts)
    }

    private func continueWalk(_ frames: inout [UInt64], _ counts: inout Counts, pc start: UInt64, exact: Bool,
                              stackPointer: UInt64, framePointer: UInt64, bottom: UInt64,
                              rule: (UInt64) -> CallFrameRule?, read: (UInt64) -> UInt64?) {
        var (pc, rsp, rbp, exact) = (start, stackPointer, framePointer, exact)
        while frames.count < maximumFrames, Self.isUserCode(pc), rsp > bottom {
            let next: UInt64
            if let found = rule(exact ? pc : pc &- 1) {
                let base = found.base == .stackPointer ? rsp : rbp
                guard let returnOffset = found.returnAddress,
                      let cfa = Self.offset(base, by: found.cfaOffset), cfa > rsp, cfa &- bottom <= maximumStackBytes,
                      let slot = Self.offset(cfa, by: returnOffset), slot >= rsp, let word = read(slot) else { break }
                if let saved = found.savedFramePointer {
                    guard let at = Self.offset(cfa, by: saved), at >= rsp, let value = read(at) else { break }
                    rbp = value
                }
                (next, rsp) = (word, cfa)
                counts.callFrameInformation += 1
            } else {
                guard rbp >= rsp, rbp & 7 == 0, rbp &- bottom < maximumStackBytes,
                      let savedFramePointer = read(rbp), let word = read(rbp &+ 8) else { break }
                (next, rsp, rbp) = (word, rbp &+ 16, savedFramePointer)
                counts.framePointer += 1
            }
            guard Self.isUserCode(next) else { break }
            frames.append(next)
            (pc, exact) = (next, false)
        }
    }

    /// Whether a value can be a return address in user space.
    static func isUserCode(_ value: UInt64) -> Bool { value >= 0x1000 && value < 0x8000_0000_0000 }

    static func offset(_ value: UInt64, by delta: Int32) -> UInt64? {
        let (result, overflow) = delta >= 0 ? value.addingReportingOverflow(UInt64(delta))
            : value.subtractingReportingOverflow(UInt64(-Int64(delta)))
        return overflow ? nil : result
    }
}
