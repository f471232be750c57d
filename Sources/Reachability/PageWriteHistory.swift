/// When each guest-physical frame was last seen written: the time of the dirty-log harvest that
/// reported it. A frame written at any moment between two harvests gets the later harvest's time,
/// so the history's resolution is the interval between harvests.
public struct PageWriteHistory: Sendable, Codable {
    private var lastWrite: [UInt64: UInt64] = [:]
    /// When recording started (nil: never).
    public private(set) var since: UInt64?

    public init() {}

    public mutating func record(_ frames: [UInt64], at time: UInt64) {
        if since == nil { since = time }
        for frame in frames { lastWrite[frame] = time }
    }

    /// The last harvest that saw the frame written; nil if none did since recording started.
    public func lastWrite(of frame: UInt64) -> UInt64? { lastWrite[frame] }

    public var framesKnown: Int { lastWrite.count }
}
