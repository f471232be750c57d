@testable import AllocationTracing
import Reachability
import Testing

/// The threads kept from a group exit until the address space's exit scan: taken once, and bounded.
@Suite struct ExitedThreadsTests {
    static func thread(_ pid: Int32) -> ThreadRootState {
        ThreadRootState(pid: pid, generalPurpose: [UInt64(pid)], vector: nil, stackPointer: 0x7FFF_0000, threadPointer: 0)
    }

    @Test func threadsAreTakenOncePerSpace() {
        var kept = ExitedThreads()
        kept.add(Self.thread(2), mm: 0xA000)
        kept.add(Self.thread(3), mm: 0xA000)
        kept.add(Self.thread(9), mm: 0xB000)
        #expect(kept.take(mm: 0xA000).map(\.pid) == [2, 3])
        #expect(kept.take(mm: 0xA000).isEmpty)
        #expect(kept.take(mm: 0xB000).map(\.pid) == [9])
        #expect(kept.take(mm: 0xC000).isEmpty)
    }

    /// A hostile guest that kills threads of spaces that never reach exit_mmap, or makes a huge group
    /// exit, cannot make the monitor keep more than the bounds.
    @Test func spacesAndThreadsAreBounded() {
        var kept = ExitedThreads()
        for i in 0..<(ExitedThreads.threadsPerSpace + 10) { kept.add(Self.thread(Int32(i)), mm: 0x1000) }
        #expect(kept.take(mm: 0x1000).count == ExitedThreads.threadsPerSpace)
        for mm in 0..<UInt64(ExitedThreads.spaces + 5) { kept.add(Self.thread(1), mm: 0x10_0000 + mm) }
        #expect(kept.take(mm: 0x10_0000).isEmpty)                 // the oldest went first
        #expect(kept.take(mm: 0x10_0000 + 5).count == 1)
        #expect(kept.take(mm: 0x10_0000 + UInt64(ExitedThreads.spaces + 4)).count == 1)
    }
}
