import AllocationTracing
import BinaryCoding
import Foundation
import Synchronization

/// The journal of calls in flight beside an attach record (`DOMAIN.calls`), rewritten before each
/// trampoline reaches the guest, so it must cost little: two fixed slots written in turn with one
/// `pwrite` each (no rename, no flush: it is there for a monitor that dies, not a host that does).
/// Each slot holds a sequence number, the returns and a CRC-32; the reader takes the valid slot
/// with the higher sequence, so a write cut short leaves the one before it (which then still
/// describes the guest: the trampoline is written only after the journal).
final class CallJournalFile: Sendable {
    static let magic: UInt32 = 0x4A43_564C   // "LVCJ"
    /// Bytes per slot: a header (magic, sequence, count), 40 bytes per call in flight (address
    /// space, slot, return address, FS base, task) and the checksum.
    static let slotSize = 64 * 1024
    static let headerSize = 16, entrySize = 40, checksumSize = 4
    static let capacity = (slotSize - headerSize - checksumSize) / entrySize

    private let descriptor: Int32
    /// Guards the sequence number and orders the writes.
    private let sequence = Mutex<UInt64>(0)

    init(path: String) throws {
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: String(cString: strerror(errno))])
        }
    }

    deinit { close(descriptor) }

    /// Writes `calls` into the older slot. More calls than a slot holds: an error (the record's
    /// next save has them all).
    func write(_ calls: CallsInFlight) throws {
        guard calls.returns.count <= Self.capacity else {
            throw CocoaError(.fileWriteOutOfSpace, userInfo: [NSLocalizedDescriptionKey: "\(calls.returns.count) calls in flight"])
        }
        let written = sequence.withLock { number in
            number += 1
            let bytes = Self.encode(calls, sequence: number)
            let offset = off_t(Int(number % 2) * Self.slotSize)
            return (bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, offset) }, bytes.count)
        }
        guard written.0 == written.1 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: written.0 < 0 ? String(cString: strerror(errno)) : "short write"])
        }
    }

    /// Empties the file, so that no older slot outlives a write that failed: a recovery takes the
    /// journal's word over the record's for every slot it names, so a stale journal must not remain.
    func invalidate() {
        sequence.withLock { _ in _ = ftruncate(descriptor, 0) }
    }

    static func encode(_ calls: CallsInFlight, sequence: UInt64) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.u32(magic)
        writer.u64(sequence)
        writer.u32(UInt32(calls.returns.count))
        for entry in calls.returns {
            writer.u64(entry.root)
            writer.u64(entry.slot)
            writer.u64(entry.returnAddress)
            writer.u64(entry.fsBase)
            writer.u64(entry.task)
        }
        writer.u32(CRC32.checksum(writer.bytes))
        return writer.bytes
    }

    /// The slot's calls and sequence, or nil when it is not a whole, valid slot.
    static func decode(_ slot: ArraySlice<UInt8>) -> (sequence: UInt64, calls: CallsInFlight)? {
        var reader = LittleEndianReader(Array(slot))
        guard reader.u32() == magic, let sequence = reader.u64(), let count = reader.u32(), Int(count) <= capacity else { return nil }
        let length = headerSize + Int(count) * entrySize
        guard slot.count >= length + checksumSize else { return nil }
        var returns: [CallsInFlight.Return] = []
        for _ in 0..<count {
            guard let root = reader.u64(), let address = reader.u64(), let returnAddress = reader.u64(),
                  let fsBase = reader.u64(), let task = reader.u64() else { return nil }
            returns.append(CallsInFlight.Return(root: root, slot: address, returnAddress: returnAddress, fsBase: fsBase, task: task))
        }
        let body = slot.prefix(length)
        guard reader.u32() == CRC32.checksum(body) else { return nil }
        return (sequence, CallsInFlight(returns: returns))
    }

    /// The newest valid slot of the file at `path`, or nil (no file, or nothing valid in it).
    static func read(path: String) -> CallsInFlight? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        let slots = [bytes.prefix(slotSize), bytes.dropFirst(slotSize).prefix(slotSize)].compactMap { decode($0) }
        return slots.max { $0.sequence < $1.sequence }?.calls
    }
}
