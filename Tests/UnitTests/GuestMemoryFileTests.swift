#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Testing
@testable import GuestMemory

/// Guest RAM saved into a sparse file and mapped back privately (copy-on-write).
@Suite struct GuestMemoryFileTests {
    private func gpa(_ v: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(v) }

    /// A fresh empty file in the temporary directory, open read-write; removed by `close`.
    private final class TemporaryFile {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lv-ram-\(UUID().uuidString)").path
        let fd: Int32
        init() { fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        deinit {
            close(fd)
            unlink(path)
        }
        var stat: stat {
            var st = Glibc.stat()
            fstat(fd, &st)
            return st
        }
        func bytes(at offset: Int, count: Int) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: count)
            let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
            return Array(b.prefix(max(0, n)))
        }
    }

    /// Pages with data at the start, across a page boundary, in the middle and in the last page.
    private func writeSamples(_ memory: GuestMemory, end: UInt64) throws {
        try memory.write(Array("first page".utf8), at: gpa(0))
        try memory.write([UInt8](repeating: 0xA5, count: 100), at: gpa(0x3000 - 50))
        try memory.store(UInt64(0x1122_3344_5566_7788), at: gpa(0x10_0008))
        try memory.write(Array("last".utf8), at: gpa(end - 4))
    }

    @Test func savedPagesReadBackFromAPrivateMapping() throws {
        let memory = try GuestMemory(size: 4 << 20)
        try writeSamples(memory, end: 4 << 20)
        let file = TemporaryFile()
        #expect(pwrite(file.fd, "keep", 4, 0) == 4)
        let written = try memory.saveSparse(to: file.fd, at: 8192)
        #expect(written == 5)  // pages 0, 2 and 3 (a write across them), 0x100 and the last one; the rest are holes
        #expect(file.bytes(at: 0, count: 4) == Array("keep".utf8))
        #expect(file.stat.st_size == 8192 + (4 << 20))

        let restored = try GuestMemory(privateMappingOf: file.fd, at: 8192, layout: memory.layout)
        #expect(restored.layout == memory.layout)
        #expect(try restored.read(at: gpa(0), count: 4 << 20) == memory.read(at: gpa(0), count: 4 << 20))
        #expect(try restored.load(UInt64.self, at: gpa(0x10_0008)) == 0x1122_3344_5566_7788)
    }

    @Test func bothRegionsOfASplitLayoutTravel() throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        #expect(memory.layout == [GuestRAMExtent(start: 0, size: 4 << 20), GuestRAMExtent(start: 1 << 32, size: 4 << 20)])
        try memory.write(Array("low".utf8), at: gpa(0x1000))
        try memory.write(Array("high".utf8), at: gpa((1 << 32) + 0x2000))
        let file = TemporaryFile()
        #expect(try memory.saveSparse(to: file.fd, at: 0) == 2)
        let restored = try GuestMemory(privateMappingOf: file.fd, at: 0, layout: memory.layout)
        #expect(try restored.read(at: gpa(0x1000), count: 3) == Array("low".utf8))
        #expect(try restored.read(at: gpa((1 << 32) + 0x2000), count: 4) == Array("high".utf8))
        #expect(restored.lowEnd == gpa(4 << 20))
    }

    @Test func writesToTheMappingNeverReachTheFile() throws {
        let memory = try GuestMemory(size: 2 << 20)
        try memory.write(Array("original".utf8), at: gpa(0x5000))
        let file = TemporaryFile()
        try memory.saveSparse(to: file.fd, at: 0)
        let first = try GuestMemory(privateMappingOf: file.fd, at: 0, layout: memory.layout)
        try first.write(Array("CHANGED!".utf8), at: gpa(0x5000))
        try first.write(Array("new".utf8), at: gpa(0x9000))  // a hole: copied on write too
        #expect(try first.read(at: gpa(0x5000), count: 8) == Array("CHANGED!".utf8))
        #expect(file.bytes(at: 0x5000, count: 8) == Array("original".utf8))
        #expect(file.bytes(at: 0x9000, count: 3) == [0, 0, 0])
        let second = try GuestMemory(privateMappingOf: file.fd, at: 0, layout: memory.layout)
        #expect(try second.read(at: gpa(0x5000), count: 8) == Array("original".utf8))
    }

    @Test func aMostlyEmptyHalfGigabyteGuestMakesASmallFile() throws {
        let size: UInt64 = 512 << 20
        let memory = try GuestMemory(size: size)
        try writeSamples(memory, end: size)
        let file = TemporaryFile()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try memory.saveSparse(to: file.fd, at: 4096) == 5)
        let saved = clock.now
        let st = file.stat
        #expect(UInt64(st.st_size) == 4096 + size)
        #expect(Int(st.st_blocks) * 512 <= 1 << 20, "\(Int(st.st_blocks) * 512) bytes on disk")
        // Reading the untouched pages did not leave them allocated.
        var residency = [UInt8](repeating: 0, count: Int(size / 4096))
        #expect(mincore(memory.regions[0].hostAddress, Int(size), &residency) == 0)
        let resident = residency.filter { $0 & 1 != 0 }.count
        #expect(resident <= 64, "\(resident) pages of the saved guest are resident")
        #expect(try memory.read(at: gpa(0), count: 10) == Array("first page".utf8))
        let mapping = clock.now
        let restored = try GuestMemory(privateMappingOf: file.fd, at: 4096, layout: memory.layout)
        let mapped = clock.now
        #expect(try restored.read(at: gpa(size - 4), count: 4) == Array("last".utf8))
        print("512 MiB guest RAM, 5 pages used: saved in \(saved - start), \(Int(st.st_blocks) * 512) bytes on disk; mapped back in \(mapped - mapping)")
    }

    @Test func savingOverOldDataLeavesHolesNotStaleBytes() throws {
        let file = TemporaryFile()
        let garbage = [UInt8](repeating: 0xEE, count: 3 << 20)
        #expect(garbage.withUnsafeBytes { pwrite(file.fd, $0.baseAddress!, $0.count, 0) } == garbage.count)
        let memory = try GuestMemory(size: 2 << 20)
        try memory.write([1, 2, 3], at: gpa(0x4000))
        try memory.saveSparse(to: file.fd, at: 4096)
        #expect(file.stat.st_size == 4096 + (2 << 20))
        #expect(file.bytes(at: 0, count: 4096).allSatisfy { $0 == 0xEE })
        let restored = try GuestMemory(privateMappingOf: file.fd, at: 4096, layout: memory.layout)
        #expect(try restored.read(at: gpa(0), count: 2 << 20) == memory.read(at: gpa(0), count: 2 << 20))
    }

    @Test func aFileShorterThanTheLayoutIsATypedError() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let file = TemporaryFile()
        try memory.saveSparse(to: file.fd, at: 0)
        #expect(ftruncate(file.fd, (2 << 20) - 4096) == 0)
        #expect(throws: GuestMemoryFileError.fileTooShort(needed: 2 << 20, available: (2 << 20) - 4096)) {
            _ = try GuestMemory(privateMappingOf: file.fd, at: 0, layout: memory.layout)
        }
        #expect(throws: GuestMemoryFileError.fileTooShort(needed: (2 << 20) + 4096, available: (2 << 20) - 4096)) {
            _ = try GuestMemory(privateMappingOf: file.fd, at: 4096, layout: [GuestRAMExtent(start: 0, size: 2 << 20)])
        }
    }

    @Test func invalidLayoutsAndOffsetsAreRefused() throws {
        let file = TemporaryFile()
        #expect(ftruncate(file.fd, 1 << 20) == 0)
        let bad: [[GuestRAMExtent]] = [
            [],
            [GuestRAMExtent(start: 0, size: 0)],
            [GuestRAMExtent(start: 0, size: 100)],
            [GuestRAMExtent(start: 0x800, size: 4096)],
            [GuestRAMExtent(start: 0, size: 8192), GuestRAMExtent(start: 4096, size: 4096)],
            [GuestRAMExtent(start: 0x10000, size: 4096), GuestRAMExtent(start: 0, size: 4096)],
            [GuestRAMExtent(start: UInt64.max - 4095, size: 8192)],
            [GuestRAMExtent(start: 0, size: 1 << 63), GuestRAMExtent(start: 1 << 63, size: 1 << 63)],
            Array(repeating: GuestRAMExtent(start: 0, size: 4096), count: 17),
        ]
        for layout in bad {
            let error = #expect(throws: GuestMemoryFileError.self) { _ = try GuestMemory(privateMappingOf: file.fd, at: 0, layout: layout) }
            guard case .invalidLayout? = error else { Issue.record("\(layout): \(String(describing: error))"); continue }
        }
        #expect(throws: GuestMemoryFileError.self) {
            _ = try GuestMemory(privateMappingOf: file.fd, at: 100, layout: [GuestRAMExtent(start: 0, size: 4096)])
        }
        #expect(throws: GuestMemoryFileError.self) {
            _ = try GuestMemory(privateMappingOf: file.fd, at: UInt64.max - 4095, layout: [GuestRAMExtent(start: 0, size: 8192)])
        }
        let memory = try GuestMemory(size: 1 << 20)
        #expect(throws: GuestMemoryFileError.self) { try memory.saveSparse(to: file.fd, at: 100) }
        #expect(throws: GuestMemoryFileError.io(operation: "ftruncate", errno: EBADF)) { try memory.saveSparse(to: -1, at: 0) }
    }
}
