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
            for index in words[region].indices where words[region][index] != 0 {
                var bits = words[region][index]
                words[region][index] = 0
                while bits != 0 {
                    frames.append(firstFrames[region] + UInt64(index * 64 + bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
            }
        }
        return frames
    }
}
