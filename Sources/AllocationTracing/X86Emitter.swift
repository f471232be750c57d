/// x86-64 code built in a byte array, with forward and backward branch targets (labels) whose
/// 32-bit displacements are filled in by `finish()`. Only what the exitless stubs need.
struct X86Emitter {
    private(set) var bytes: [UInt8] = []
    private var labels: [Int?] = []
    private var fixups: [(at: Int, label: Int)] = []

    /// A new label, placed later with `place(_:)`.
    mutating func label() -> Int {
        labels.append(nil)
        return labels.count - 1
    }

    mutating func place(_ label: Int) { labels[label] = bytes.count }

    mutating func emit(_ raw: [UInt8]) { bytes += raw }

    mutating func emit32(_ value: Int32) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    mutating func emit64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    /// `opcode` followed by the rel32 to `label` (`jmp` e9, `jcc` 0f 8x).
    mutating func branch(_ opcode: [UInt8], to label: Int) {
        emit(opcode)
        fixups.append((bytes.count, label))
        emit32(0)
    }

    /// The code with every branch displacement filled in; nil if a label was never placed.
    func finish() -> [UInt8]? {
        var out = bytes
        for (at, label) in fixups {
            guard let target = labels[label] else { return nil }
            let displacement = Int32(target - (at + 4))
            withUnsafeBytes(of: displacement.littleEndian) { out.replaceSubrange(at..<(at + 4), with: $0) }
        }
        return out
    }
}
