/// The guest-physical frames written during one tracking interval.
public struct WrittenFrames: Sendable, Equatable {
    /// Frame numbers (guest-physical address >> 12), ascending, each once.
    public let frames: [UInt64]
    /// CLOCK_MONOTONIC nanoseconds at which the interval ended (when it was harvested).
    public let endedAt: UInt64

    public init(frames: [UInt64], endedAt: UInt64) {
        self.frames = frames
        self.endedAt = endedAt
    }
}

/// A source of "which guest frames were written since I last asked", for caches of guest memory.
public protocol GuestWriteTracking: AnyObject, Sendable {
    /// The frames written since the previous harvest (the first time: since tracking was enabled),
    /// and starts a new interval. A write that races with a harvest shows up in that harvest or the
    /// next one, never in neither: a frame absent from every harvest since it was read still holds
    /// what was read.
    func harvest() throws -> WrittenFrames
}
