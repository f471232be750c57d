import Dispatch
import Synchronization
import Testing

@testable import GuestMemory

@Suite struct GuestMemoryHostWritesTests {
    private func gpa(_ v: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(v) }

    @Test func nothingIsRecordedByDefault() throws {
        let memory = try GuestMemory(size: 2 << 20)
        try memory.write([1], at: gpa(0x1000))
        try memory.store(UInt64(1), at: gpa(0x2000))
        try memory.fill(1, at: gpa(0x3000), count: 10)
        #expect(memory.takeHostWrittenFrames() == [])
    }

    @Test func writesFillsAndStoresMarkEveryFrameTheyTouch() throws {
        let memory = try GuestMemory(size: 2 << 20)
        memory.recordHostWrites(true)
        try memory.fill(0, at: gpa(0x1_0000), count: 3 * 4096 + 1)        // frames 0x10...0x13
        try memory.store(UInt64(1), at: gpa(0x7FFC))                       // straddles 0x7 and 0x8
        try memory.write([1, 2], at: gpa(0x1F_FFFE))                       // the last frame
        try memory.write([1], at: gpa(0x10))
        try memory.write([UInt8](), at: gpa(0x5_0000))                     // empty: no frame
        #expect(throws: GuestMemoryError.self) { try memory.write([1, 2], at: gpa(0x1F_FFFF)) }
        #expect(memory.takeHostWrittenFrames() == [0x0, 0x7, 0x8, 0x10, 0x11, 0x12, 0x13, 0x1FF])
        #expect(memory.takeHostWrittenFrames() == [])                      // taking cleared them
        _ = try memory.read(at: gpa(0x3000), count: 8)                     // reads mark nothing
        #expect(memory.takeHostWrittenFrames() == [])
    }

    @Test func highRegionFramesAreNumberedFromTheirAddress() throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        memory.recordHostWrites(true)
        try memory.store(UInt16(1), at: gpa((1 << 32) + 0x5FFF))          // straddles two high frames
        try memory.store(UInt8(1), at: gpa(0x3F_FFFF))                     // last low frame
        #expect(memory.takeHostWrittenFrames() == [0x3FF, 0x10_0005, 0x10_0006])
    }

    @Test func stoppingDiscardsWhatWasRecorded() throws {
        let memory = try GuestMemory(size: 2 << 20)
        memory.recordHostWrites(true)
        try memory.write([1], at: gpa(0x1000))
        memory.recordHostWrites(false)
        try memory.write([1], at: gpa(0x2000))
        memory.recordHostWrites(true)
        memory.recordHostWrites(true)                                      // already on: keeps marks
        try memory.write([1], at: gpa(0x3000))
        memory.recordHostWrites(true)
        #expect(memory.takeHostWrittenFrames() == [0x3])
    }

    @Test func concurrentWritesAreEachTakenOnce() throws {
        let memory = try GuestMemory(size: 16 << 20)
        memory.recordHostWrites(true)
        let taken = Mutex<[UInt64]>([])
        let finishedWriters = Atomic(0)
        let writers = 3, framesEach = 1000
        DispatchQueue.concurrentPerform(iterations: writers + 1) { worker in
            if worker == writers {
                while finishedWriters.load(ordering: .acquiring) < writers {
                    let frames = memory.takeHostWrittenFrames()
                    taken.withLock { $0 += frames }
                }
                return
            }
            for i in 0..<framesEach {
                let frame = UInt64(i * writers + worker)
                try? memory.store(UInt64(frame), at: GuestPhysicalAddress(frame << 12 + 8))
            }
            finishedWriters.add(1, ordering: .releasing)
        }
        let all = taken.withLock { $0 } + memory.takeHostWrittenFrames()
        #expect(all.sorted() == (0..<UInt64(writers * framesEach)).map { $0 })
    }
}
