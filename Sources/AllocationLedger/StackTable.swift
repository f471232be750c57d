/// Interns call stacks (lists of return addresses, innermost first): each distinct stack is
/// stored once and blocks refer to it by index.
struct StackTable: Sendable {
    private var indices: [[UInt64]: UInt32] = [:]
    private(set) var stacks: [[UInt64]] = []

    mutating func intern(_ stack: [UInt64]) -> UInt32 {
        if let index = indices[stack] { return index }
        let index = UInt32(stacks.count)
        stacks.append(stack)
        indices[stack] = index
        return index
    }

    /// Bytes used by the interned frames (8 per frame), without container overhead.
    var frameBytes: Int { stacks.reduce(0) { $0 + $1.count * 8 } }
}
