import AllocationLedger
import GuestMemory
import Synchronization

/// One release a process recorded in its event ring. Every field is what the process wrote:
/// plain numbers, trusted for nothing but its own accounting.
struct RingRelease: Sendable, Equatable {
    var function: AllocatorFunction
    var pointer: UInt64
    var returnAddress: UInt64
    var stackPointer: UInt64
    var threadPointer: UInt64
    /// The instruction after the displaced one in this process (so the entry point is known).
    var resumeAddress: UInt64
}

/// Takes the complete records out of one address space's event ring, in the order they were
/// reserved, and moves the ring's tail past them. The ring is memory the process can write: the
/// reader keeps its own tail, reads at most a ring's worth, stops at the first record whose commit
/// word is not its index + 1 (not complete yet, or scribbled on: it waits for the next drain),
/// and counts records whose function is no release as malformed (skipped).
struct EventRingReader: Sendable {
    /// Guest-physical address of the window's first page (the header); the records follow.
    let header: GuestPhysicalAddress
    /// The next index to read: the monitor's copy of the tail.
    private(set) var tail: UInt64 = 0
    private(set) var malformed = 0

    init(header: GuestPhysicalAddress) {
        self.header = header
    }

    /// Writes an empty ring's header.
    static func format(_ header: GuestPhysicalAddress, in memory: GuestMemory) throws(GuestMemoryError) {
        try memory.store(ExitlessLayout.Header.magicValue, at: header.offset(ExitlessLayout.Header.magic))
        try memory.store(UInt64(0), at: header.offset(ExitlessLayout.Header.head))
        try memory.store(UInt64(0), at: header.offset(ExitlessLayout.Header.tail))
        try memory.store(UInt64(ExitlessLayout.ringCapacity), at: header.offset(ExitlessLayout.Header.capacity))
        try memory.store(UInt64(ExitlessLayout.recordSize), at: header.offset(ExitlessLayout.Header.recordSize))
    }

    /// The complete records since the last drain.
    mutating func drain(_ memory: GuestMemory) -> [RingRelease] {
        let capacity = UInt64(ExitlessLayout.ringCapacity)
        let start = tail
        guard let head = try? memory.load(UInt64.self, at: header.offset(ExitlessLayout.Header.head)) else { return [] }
        // A head behind the tail, or more than a ring ahead, is the process's doing: read at most
        // one ring's worth and let the commit words decide.
        let available = head &- tail <= capacity ? head &- tail : capacity
        var records: [RingRelease] = []
        var words = [UInt64](repeating: 0, count: ExitlessLayout.recordSize / 8)
        for _ in 0..<available {
            let slot = header.offset(4096 + Int(tail & (capacity - 1)) * ExitlessLayout.recordSize)
            // The commit word first, then the fields: a writer stores them before the commit word.
            guard (try? memory.load(UInt64.self, at: slot)) == tail &+ 1 else { break }
            atomicMemoryFence(ordering: .acquiring)
            let read: Bool = words.withUnsafeMutableBufferPointer { (buffer) -> Bool in (try? memory.readWords(at: slot, into: buffer)) != nil }
            guard read else { break }
            let index = words[ExitlessLayout.Record.function / 8]
            let functions = AllocatorFunction.allCases
            if index < UInt64(functions.count), functions[Int(index)].releases {
                records.append(RingRelease(function: functions[Int(index)], pointer: words[ExitlessLayout.Record.pointer / 8],
                                           returnAddress: words[ExitlessLayout.Record.returnAddress / 8],
                                           stackPointer: words[ExitlessLayout.Record.stackPointer / 8],
                                           threadPointer: words[ExitlessLayout.Record.threadPointer / 8],
                                           resumeAddress: words[ExitlessLayout.Record.resume / 8]))
            } else {
                malformed += 1
            }
            tail &+= 1
        }
        if tail != start {
            try? memory.store(tail, at: header.offset(ExitlessLayout.Header.tail))
        }
        return records
    }
}

extension GuestPhysicalAddress {
    /// This address plus a small non-negative byte offset.
    func offset(_ bytes: Int) -> GuestPhysicalAddress { GuestPhysicalAddress(rawValue &+ UInt64(bytes)) }
}
