import Synchronization

/// One guest write log shared by several readers (the user-space scanner and the kernel scanner),
/// each with its own intervals: a harvest by one reader keeps what it took for the others, so
/// every reader still sees every written frame in one of its own harvests.
public final class WriteLogReaders: Sendable {
    let source: any GuestWriteTracking
    struct State {
        /// Frames harvested from the source that each reader has not taken yet, by reader number.
        var pending: [Int: Set<UInt64>] = [:]
        var next = 0
    }
    let state = Mutex(State())

    public init(source: any GuestWriteTracking) {
        self.source = source
    }

    /// A new reader; its first harvest returns what was written since it joined (at least).
    public func join() -> any GuestWriteTracking {
        state.withLock { s in
            defer { s.next += 1 }
            s.pending[s.next] = []
            return Reader(readers: self, number: s.next)
        }
    }

    /// Removes `reader`; returns how many readers are left.
    @discardableResult
    public func leave(_ reader: any GuestWriteTracking) -> Int {
        state.withLock { s in
            if let r = reader as? Reader, r.readers === self { s.pending[r.number] = nil }
            return s.pending.count
        }
    }

    /// Readers now.
    public var count: Int { state.withLock { $0.pending.count } }

    func harvest(for number: Int) throws -> WrittenFrames {
        try state.withLock { s throws -> WrittenFrames in
            guard let mine = s.pending[number] else { throw WriteLogError.readerLeft }
            let fresh = try source.harvest()
            for key in s.pending.keys where key != number { s.pending[key]!.formUnion(fresh.frames) }
            s.pending[number] = []
            let frames = mine.isEmpty ? fresh.frames : Array(mine.union(fresh.frames)).sorted()
            return WrittenFrames(frames: frames, endedAt: fresh.endedAt)
        }
    }

    final class Reader: GuestWriteTracking {
        let readers: WriteLogReaders
        let number: Int
        init(readers: WriteLogReaders, number: Int) {
            self.readers = readers
            self.number = number
        }
        func harvest() throws -> WrittenFrames { try readers.harvest(for: number) }
    }
}

/// Why a write-log reader could not harvest.
public enum WriteLogError: Error, CustomStringConvertible {
    case readerLeft
    public var description: String { "this reader left the guest's write log" }
}
