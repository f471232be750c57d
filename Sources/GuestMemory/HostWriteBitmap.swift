/// One bit per 4 KiB frame of each RAM region: the frames the host wrote since the last `take`.
struct HostWriteBitmap: Sendable {
    private let firstFrames: [UInt64]
    private var words: [[UInt64]]

    init(regions: [GuestRAMRegion]) {
        firstFrames = regions.map { $0.start.rawValue >> 12 }
        words = regions.map { [UInt64](repeating: 0, count: Int((($0.size >> 12) + 63) / 64)) }
    }

    /// Marks the frames of [address, address+count), which lies inside region number `region`.
    mutating func mark(region: Int, address: GuestPhysicalAddress, count: Int) {
        guard count > 0 else { return }
        let first = (address.rawValue >> 12) - firstFrames[region]
        let last = ((address.rawValue + UInt64(count) - 1) >> 12) - firstFrames[region]
        for page in first...last {
            words[region][Int(page >> 6)] |= 1 << (page & 63)
        }
    }

    /// The marked frame numbers, ascending; clears them.
    mutating func take() -> [UInt64] {
        var frames: [UInt64] = []
        for region in words.indices {
            FrameBitmap.appendFrames(of: words[region], firstFrame: firstFrames[region], to: &frames)
            words[region] = [UInt64](repeating: 0, count: words[region].count)
        }
        return frames
    }
}

/// Frame numbers from a dirty bitmap: bit i of word w stands for frame `firstFrame + 64·w + i`
/// (the layout of KVM's dirty log and of `HostWriteBitmap`).
public enum FrameBitmap {
    /// Appends the frame of every set bit, ascending.
    public static func appendFrames(of words: [UInt64], firstFrame: UInt64, to frames: inout [UInt64]) {
        for (index, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                frames.append(firstFrame + UInt64(index * 64 + bits.trailingZeroBitCount))
                bits &= bits - 1
            }
        }
    }
}
