import Synchronization

/// The control page's payload registers: how the guest's `lv-payload` fetches its work (a cpio
/// archive with the command and `--add` files) after a boot or a snapshot restore. The guest
/// polls `state` until a payload is offered, reads its length, and asks for it chunk by chunk
/// into a buffer of its own; the monitor copies each chunk through the guest's page tables
/// (`copyNextChunk`, driven by the VMM, which knows the writing vCPU). All values the guest
/// writes are untrusted: a copy takes at most what is left, and a failed copy is a result code.
public final class PayloadChannel: Sendable {
    /// 64-bit registers, offsets into the control page.
    public static let stateOffset: UInt64 = 0x10
    public static let lengthOffset: UInt64 = 0x18
    public static let destinationOffset: UInt64 = 0x20
    public static let copyOffset: UInt64 = 0x28
    public static let resultOffset: UInt64 = 0x30
    public static let takenOffset: UInt64 = 0x38
    /// "LVPL" in the high half of `state`: the guest tells a LeakVisor monitor from none.
    public static let magic: UInt64 = 0x4C56_504C << 32
    /// Largest chunk one copy request moves (the guest asks for 1 MiB).
    public static let maximumChunk: UInt64 = 16 << 20

    /// Result codes of a failed copy (read from `resultOffset` as a negative number).
    public enum CopyFailure: Int64, Sendable {
        case noPayload = -1
        case badBuffer = -2
        case nothingLeft = -3
    }

    private struct Inner {
        var payload: [UInt8]?
        var cursor = 0
        var destination: UInt64 = 0
        var result: Int64 = 0
        var waitingAnnounced = false
        var taken = false
    }
    private let inner = Mutex(Inner())
    private let onWaiting: @Sendable () -> Void
    private let onTaken: @Sendable () -> Void

    /// `onWaiting` runs (on the polling vCPU's thread, once) when the guest first asks for a
    /// payload that is not there yet: it must not block. `onTaken` runs when the guest says it
    /// has taken the whole payload.
    public init(onWaiting: @escaping @Sendable () -> Void = {}, onTaken: @escaping @Sendable () -> Void = {}) {
        self.onWaiting = onWaiting
        self.onTaken = onTaken
    }

    /// Makes `payload` the guest's (once; a later offer replaces one not yet fetched).
    public func offer(_ payload: [UInt8]) {
        inner.withLock { s in
            s.payload = payload
            s.cursor = 0
        }
    }

    /// Whether the guest is polling and no payload has been offered yet.
    public var guestIsWaiting: Bool { inner.withLock { $0.waitingAnnounced && $0.payload == nil } }
    /// Whether the guest said it took the payload.
    public var taken: Bool { inner.withLock { $0.taken } }

    /// A 64-bit register read; nil for offsets that are not the channel's.
    public func read(offset: UInt64) -> UInt64? {
        var announce = false
        let value: UInt64? = inner.withLock { s in
            switch offset {
            case Self.stateOffset:
                if s.payload == nil, !s.waitingAnnounced {
                    s.waitingAnnounced = true
                    announce = true
                }
                return Self.magic | (s.payload == nil ? 0 : 1)
            case Self.lengthOffset: return UInt64(s.payload?.count ?? 0)
            case Self.resultOffset: return UInt64(bitPattern: s.result)
            default: return nil
            }
        }
        if announce { onWaiting() }
        return value
    }

    /// A register write; returns false for offsets that are not the channel's. The copy register
    /// is not handled here (the VMM calls `copyNextChunk` with the writing vCPU's memory view).
    public func write(offset: UInt64, value: UInt64) -> Bool {
        switch offset {
        case Self.destinationOffset:
            inner.withLock { $0.destination = value }
        case Self.takenOffset:
            let first = inner.withLock { s -> Bool in
                guard s.payload != nil, !s.taken else { return false }
                s.taken = true
                return true
            }
            if first { onTaken() }
        default: return false
        }
        return true
    }

    /// Serves a write of `length` to the copy register: `store` writes the next bytes at the
    /// destination the guest gave (returning false if the guest's buffer cannot take them); the
    /// result register then holds the count copied or a `CopyFailure`.
    public func copyNextChunk(length: UInt64, store: (_ destination: UInt64, _ bytes: ArraySlice<UInt8>) -> Bool) {
        inner.withLock { s in
            guard let payload = s.payload else { s.result = CopyFailure.noPayload.rawValue; return }
            let left = payload.count - s.cursor
            guard left > 0 else { s.result = CopyFailure.nothingLeft.rawValue; return }
            let count = Int(min(length, Self.maximumChunk, UInt64(left)))
            guard count > 0 else { s.result = CopyFailure.badBuffer.rawValue; return }
            guard store(s.destination, payload[s.cursor..<(s.cursor + count)]) else {
                s.result = CopyFailure.badBuffer.rawValue
                return
            }
            s.cursor += count
            s.result = Int64(count)
        }
    }
}
