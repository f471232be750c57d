import AllocationLedger
import GuestMemory
import Synchronization

/// One record a process wrote in its event ring: a release, an allocation's entry or its exit.
/// Every field is what the process wrote: plain numbers, trusted for nothing but its own
/// accounting.
struct RingRecord: Sendable, Equatable {
    /// The stub that wrote it (its index in the tracker's list of stubs).
    var stub: Int
    /// A release: the block. An entry: the first argument. An exit: the result.
    var pointer: UInt64
    /// Not in an exit record.
    var returnAddress: UInt64
    /// rsp at the call's entry (the slot of its return address).
    var stackPointer: UInt64
    var threadPointer: UInt64
    /// The instruction after the displaced one in this process (so the entry point is known).
    /// Not in an exit record.
    var resumeAddress: UInt64
    /// What kind of record, and what only an allocation's entry has.
    var kind: Kind = .release

    enum Kind: Sendable, Equatable {
        case release
        /// `arguments`: rdi, rsi, rdx; `stack`: the copy of the caller's stack from
        /// `stackPointer` up (as long as it could be read).
        case allocationEntry(arguments: [UInt64], framePointer: UInt64, stack: [UInt8])
        case allocationExit
    }
}

/// Takes the complete records out of one address space's event ring and moves the ring's tail
/// past them. The ring is memory the process can write: the reader keeps its own indices, reads
/// at most a ring's worth, and takes a record only when its commit word is its index + 1.
///
/// A record reserved but not yet committed (its writer was preempted in the stub) is a *hole*:
/// the records after it are taken anyway, and the hole is looked at again at the next drain. Its
/// release has not happened yet (the stub commits before the allocator runs), so nothing that
/// depends on it can have happened either; the tail stays at the oldest hole, so its slot is not
/// reused. A committed record that names no known stub, or a stub of another function, is
/// counted as malformed and skipped.
struct EventRingReader: Sendable {
    /// Guest-physical address of the window's first page (the header); the records follow.
    let header: GuestPhysicalAddress
    /// Records in the ring (a power of two, the stubs' own number).
    let capacity: UInt64
    /// The oldest index not taken yet: the tail the process sees.
    private(set) var tail: UInt64 = 0
    /// The next index never looked at.
    private(set) var next: UInt64 = 0
    /// Reserved, not yet committed, oldest first.
    private(set) var holes: [UInt64] = []
    private(set) var malformed = 0

    init(header: GuestPhysicalAddress, capacity: Int = ExitlessLayout.ringCapacity) {
        self.header = header
        self.capacity = UInt64(capacity)
    }

    /// The record's function word: the function's index in `AllocatorFunction.allCases` and the
    /// stub's index above it.
    static func functionWord(function: AllocatorFunction, stub: Int) -> Int32? {
        guard let index = AllocatorFunction.allCases.firstIndex(of: function), stub < 1 << 22 else { return nil }
        return Int32(index | stub << 8)
    }

    /// Writes an empty ring's header.
    static func format(_ header: GuestPhysicalAddress, capacity: Int = ExitlessLayout.ringCapacity, in memory: GuestMemory) throws(GuestMemoryError) {
        try memory.store(ExitlessLayout.Header.magicValue, at: header.offset(ExitlessLayout.Header.magic))
        try memory.store(UInt64(0), at: header.offset(ExitlessLayout.Header.head))
        try memory.store(UInt64(0), at: header.offset(ExitlessLayout.Header.tail))
        try memory.store(UInt64(capacity), at: header.offset(ExitlessLayout.Header.capacity))
        try memory.store(UInt64(ExitlessLayout.recordSize), at: header.offset(ExitlessLayout.Header.recordSize))
        try resetStackLimit(header, in: memory)
    }

    /// No stack limit known (a new process, or the next one to use the window).
    static func resetStackLimit(_ header: GuestPhysicalAddress, in memory: GuestMemory) throws(GuestMemoryError) {
        try memory.store(UInt64.max, at: header.offset(ExitlessLayout.Header.stackLimit))
    }

    /// The records committed since the last drain, in index order. `stubs[k]` is the function
    /// of stub k.
    mutating func drain(_ memory: GuestMemory, stubs: [AllocatorFunction]) -> [RingRecord] {
        var records: [RingRecord] = []
        var stillOpen: [UInt64] = []
        for index in holes {
            if let record = take(index, memory, stubs) { records += record } else { stillOpen.append(index) }
        }
        if let head = try? memory.load(UInt64.self, at: header.offset(ExitlessLayout.Header.head)) {
            // The process may have written any head: look at no index a ring's worth past the tail.
            let end = min(head, tail &+ capacity)
            var index = next
            while index < end {
                if let record = take(index, memory, stubs) { records += record } else { stillOpen.append(index) }
                index += 1
            }
            next = max(next, index)
        }
        holes = stillOpen
        let newTail = holes.first ?? next
        if newTail != tail {
            tail = newTail
            try? memory.store(tail, at: header.offset(ExitlessLayout.Header.tail))
        }
        return records
    }

    /// The record at `index` if committed: [] when malformed (counted), nil when not committed.
    private mutating func take(_ index: UInt64, _ memory: GuestMemory, _ stubs: [AllocatorFunction]) -> [RingRecord]? {
        let position = Int(index & (capacity - 1))
        let slot = header.offset(4096 + position * ExitlessLayout.recordSize)
        // The commit word first, then the fields: a writer stores them before the commit word.
        guard (try? memory.load(UInt64.self, at: slot)) == index &+ 1 else { return nil }
        atomicMemoryFence(ordering: .acquiring)
        var words = [UInt64](repeating: 0, count: ExitlessLayout.recordSize / 8)
        let read: Bool = words.withUnsafeMutableBufferPointer { (buffer) -> Bool in (try? memory.readWords(at: slot, into: buffer)) != nil }
        let word = words[ExitlessLayout.Record.function / 8]
        let functions = AllocatorFunction.allCases
        let stub = Int(truncatingIfNeeded: (word >> 8) & 0x3F_FFFF), function = Int(word & 0xFF)
        let exit = word >> 30 == 1
        guard read, word >> 31 == 0, stub < stubs.count, function < functions.count, functions[function] == stubs[stub],
              !exit || !stubs[stub].releases else {
            malformed += 1
            return []
        }
        typealias R = ExitlessLayout.Record
        var record = RingRecord(stub: stub, pointer: words[R.pointer / 8], returnAddress: words[R.returnAddress / 8],
                                 stackPointer: words[R.stackPointer / 8], threadPointer: words[R.threadPointer / 8],
                                 resumeAddress: words[R.resume / 8])
        if exit {
            record.kind = .allocationExit
        } else if !stubs[stub].releases {
            // The copy as far as it was made (a copy that met an unmapped page stops there).
            let copyWords = ExitlessLayout.stackCopyBytes / 8
            let copied = Int(min(words[R.copiedWords / 8], UInt64(copyWords)))
            let copy = header.offset(ExitlessLayout.stackCopies(capacity: Int(capacity)) + position * ExitlessLayout.stackCopyBytes)
            let stack = (try? memory.read(at: copy, count: copied * 8)) ?? []
            record.kind = .allocationEntry(arguments: [record.pointer, words[R.secondArgument / 8], words[R.thirdArgument / 8]],
                                           framePointer: words[R.framePointer / 8], stack: stack)
        }
        return [record]
    }
}

extension GuestPhysicalAddress {
    /// This address plus a small non-negative byte offset.
    func offset(_ bytes: Int) -> GuestPhysicalAddress { GuestPhysicalAddress(rawValue &+ UInt64(bytes)) }
}
