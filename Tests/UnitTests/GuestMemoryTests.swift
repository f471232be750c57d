import Testing

@testable import GuestMemory

@Suite struct GuestMemoryTests {
    private func gpa(_ v: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(v) }

    // MARK: layout

    @Test func smallGuestIsOneRegionFromZero() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(memory.regions.count == 1)
        #expect(memory.regions[0].start == gpa(0))
        #expect(memory.regions[0].size == 2 << 20)
        #expect(memory.lowEnd == gpa(0x20_0000))
        #expect(memory.totalSize == 2 << 20)
    }

    @Test func invalidSizesAreRejected() {
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(size: (1 << 20) - 4096) }
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(size: (2 << 20) + 1) }
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(size: 0) }
        let error = #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(size: 100) }
        guard case .invalidLayout? = error else {
            Issue.record("expected .invalidLayout, got \(String(describing: error))")
            return
        }
    }

    /// A size whose high region is above Int.max but still ends below 2^64 (`--memory 8388609T`)
    /// used to trap converting it to Int for mmap; it now fails like any refused mapping.
    @Test func sizeBeyondIntMaxFailsInsteadOfTrapping() {
        #expect(throws: GuestMemoryError.hostAllocationFailed(bytes: (1 << 63) + (1 << 40) - 0xC000_0000)) {
            _ = try GuestMemory(size: (1 << 63) + (1 << 40))
        }
    }

    @Test func largeGuestSplitsAroundTheThreeGiBHole() throws {
        let size: UInt64 = (3 << 30) + (16 << 20)
        let memory = try GuestMemory(size: size)
        #expect(memory.regions.count == 2)
        #expect(memory.regions[0].start == gpa(0))
        #expect(memory.regions[0].end == gpa(0xC000_0000))
        #expect(memory.regions[1].start == gpa(0x1_0000_0000))
        #expect(memory.regions[1].size == 16 << 20)
        #expect(memory.lowEnd == gpa(0xC000_0000))
        #expect(memory.totalSize == size)

        // Low region: last byte fine, first hole byte not.
        try memory.store(UInt8(0x5A), at: gpa(0xBFFF_FFFF))
        #expect(try memory.load(UInt8.self, at: gpa(0xBFFF_FFFF)) == 0x5A)
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(0xC000_0000), length: 1)) {
            _ = try memory.read(at: gpa(0xC000_0000), count: 1)
        }
        #expect(!memory.contains(gpa(0xFFFF_FFFF)))
        #expect(!memory.contains(gpa(0xE000_0000)))
        // An access straddling the end of a region into the hole fails as a whole.
        #expect(throws: GuestMemoryError.self) { _ = try memory.load(UInt16.self, at: gpa(0xBFFF_FFFF)) }
        #expect(throws: GuestMemoryError.self) { try memory.write([1, 2, 3, 4], at: gpa(0xFFFF_FFFE)) }

        // High region: both ends.
        try memory.write([1, 2, 3], at: gpa(0x1_0000_0000))
        #expect(try memory.read(at: gpa(0x1_0000_0000), count: 3) == [1, 2, 3])
        let lastHigh = gpa(0x1_0000_0000 + (16 << 20) - 1)
        try memory.store(UInt8(0xC3), at: lastHigh)
        #expect(try memory.load(UInt8.self, at: lastHigh) == 0xC3)
        #expect(throws: GuestMemoryError.self) { _ = try memory.read(at: lastHigh, count: 2) }
        #expect(!memory.contains(gpa(0x1_0000_0000 + (16 << 20))))

        // The high-region writes did not alias low memory (no truncation of the address to 32 bits).
        #expect(try memory.load(UInt8.self, at: gpa(0)) == 0)
    }

    @Test func customLowLimit() throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        #expect(memory.regions.map(\.start) == [gpa(0), gpa(1 << 32)])
        #expect(memory.regions.map(\.size) == [4 << 20, 4 << 20])
        #expect(memory.contains(gpa(0x3F_FFFF)))
        #expect(!memory.contains(gpa(0x40_0000)))
        #expect(memory.contains(gpa((1 << 32) + 0x3F_FFFF)))
    }

    // MARK: bounds

    @Test func boundsAtBothEnds() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let end: UInt64 = 2 << 20

        #expect(memory.contains(gpa(0)))
        #expect(memory.contains(gpa(0), length: Int(end)))
        #expect(!memory.contains(gpa(0), length: Int(end) + 1))
        #expect(memory.contains(gpa(end - 1)))
        #expect(!memory.contains(gpa(end)))
        #expect(memory.contains(gpa(end), length: 0))       // the empty range at the end is inside
        #expect(!memory.contains(gpa(end + 1), length: 0))

        try memory.write([0xAB], at: gpa(end - 1))
        #expect(try memory.read(at: gpa(end - 1), count: 1) == [0xAB])
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(end), length: 1)) {
            _ = try memory.read(at: gpa(end), count: 1)
        }
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(end - 1), length: 2)) {
            _ = try memory.read(at: gpa(end - 1), count: 2)
        }
        try memory.store(UInt64(7), at: gpa(end - 8))
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(end - 7), length: 8)) {
            try memory.store(UInt64(7), at: gpa(end - 7))
        }
        #expect(throws: GuestMemoryError.self) { try memory.fill(0, at: gpa(end - 4), count: 5) }
        try memory.fill(0x11, at: gpa(end - 4), count: 4)
        #expect(try memory.read(at: gpa(end - 4), count: 4) == [0x11, 0x11, 0x11, 0x11])
        // First byte.
        try memory.store(UInt8(0x77), at: gpa(0))
        #expect(try memory.load(UInt8.self, at: gpa(0)) == 0x77)
    }

    @Test func failedWriteChangesNothing() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let end: UInt64 = 2 << 20
        #expect(throws: GuestMemoryError.self) { try memory.write([9, 9, 9, 9], at: gpa(end - 2)) }
        #expect(try memory.read(at: gpa(end - 2), count: 2) == [0, 0])
    }

    @Test func negativeLengthsAreRejected() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(!memory.contains(gpa(0), length: -1))
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(0x1000), length: -1)) {
            _ = try memory.read(at: gpa(0x1000), count: -1)
        }
        #expect(throws: GuestMemoryError.self) { try memory.fill(0, at: gpa(0x1000), count: -5) }
    }

    @Test(arguments: [UInt64.max, UInt64.max - 3, UInt64.max - 7, 1 << 63])
    func addressesNearTheTopOfTheAddressSpace(_ address: UInt64) throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        #expect(!memory.contains(gpa(address)))
        #expect(!memory.contains(gpa(address), length: Int.max))
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(address), length: 8)) {
            _ = try memory.read(at: gpa(address), count: 8)
        }
        #expect(throws: GuestMemoryError.self) { try memory.store(UInt64.max, at: gpa(address)) }
        #expect(throws: GuestMemoryError.self) { _ = try memory.load(UInt32.self, at: gpa(address)) }
        #expect(throws: GuestMemoryError.self) { try memory.write([1], at: gpa(address)) }
    }

    @Test func hugeLengthFromAValidAddressDoesNotOverflow() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(!memory.contains(gpa(0x1000), length: Int.max))
        #expect(throws: GuestMemoryError.self) { try memory.fill(0, at: gpa(0x1000), count: Int.max) }
    }

    // MARK: little-endian access

    @Test func loadAndStoreAreLittleEndian() throws {
        let memory = try GuestMemory(size: 2 << 20)
        try memory.store(UInt32(0x1122_3344), at: gpa(0x100))
        #expect(try memory.read(at: gpa(0x100), count: 4) == [0x44, 0x33, 0x22, 0x11])
        #expect(try memory.load(UInt16.self, at: gpa(0x101)) == 0x2233)      // unaligned
        #expect(try memory.load(UInt8.self, at: gpa(0x103)) == 0x11)

        try memory.write([0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01], at: gpa(0x203))
        #expect(try memory.load(UInt64.self, at: gpa(0x203)) == 0x0123_4567_89AB_CDEF)
        try memory.store(Int16(-2), at: gpa(0x300))
        #expect(try memory.read(at: gpa(0x300), count: 2) == [0xFE, 0xFF])
        #expect(try memory.load(Int16.self, at: gpa(0x300)) == -2)
        try memory.store(UInt64(0x8000_0000_0000_0001), at: gpa(0x401))
        #expect(try memory.read(at: gpa(0x401), count: 8) == [1, 0, 0, 0, 0, 0, 0, 0x80])
    }

    @Test func writeAcceptsAnyCollection() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let source: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7]
        try memory.write(source[2..<6], at: gpa(0x10))
        try memory.write("hi".utf8, at: gpa(0x20))
        #expect(try memory.read(at: gpa(0x10), count: 4) == [2, 3, 4, 5])
        #expect(try memory.read(at: gpa(0x20), count: 2) == [0x68, 0x69])
        #expect(try memory.read(at: gpa(0x10), count: 0) == [])
    }

    @Test func memoryStartsZeroed() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(try memory.read(at: gpa(0x1F_F000), count: 4096).allSatisfy { $0 == 0 })
    }

    // MARK: bulk word reads

    @Test func readWordsCopiesLittleEndianWordsFromAnyAlignment() throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        let bytes = (0..<32).map { UInt8($0) }
        try memory.write(bytes, at: gpa(0x1003))
        var words = [UInt64](repeating: 0, count: 3)
        try words.withUnsafeMutableBufferPointer { try memory.readWords(at: gpa(0x1003), into: $0) }
        #expect(words == [0x0706_0504_0302_0100, 0x0F0E_0D0C_0B0A_0908, 0x1716_1514_1312_1110])

        let high = gpa((1 << 32) + 0x10)
        try memory.store(UInt64(0xFEED_FACE_CAFE_BEEF), at: high)
        try words.withUnsafeMutableBufferPointer { try memory.readWords(at: high, into: .init(rebasing: $0[1..<2])) }
        #expect(words[1] == 0xFEED_FACE_CAFE_BEEF)
        #expect(words[0] == 0x0706_0504_0302_0100 && words[2] == 0x1716_1514_1312_1110)   // untouched
    }

    @Test func readWordsIsBoundsChecked() throws {
        let memory = try GuestMemory(size: 8 << 20, lowLimit: 4 << 20)
        let lowEnd: UInt64 = 4 << 20
        var words = [UInt64](repeating: 0xAA, count: 2)
        try words.withUnsafeMutableBufferPointer { try memory.readWords(at: gpa(lowEnd - 16), into: $0) }
        #expect(words == [0, 0])
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(lowEnd - 8), length: 16)) {
            try words.withUnsafeMutableBufferPointer { try memory.readWords(at: gpa(lowEnd - 8), into: $0) }
        }
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(0xFFFF_FFF8), length: 16)) {
            try words.withUnsafeMutableBufferPointer { try memory.readWords(at: gpa(0xFFFF_FFF8), into: $0) }
        }
        #expect(throws: GuestMemoryError.outOfRange(address: gpa(UInt64.max - 7), length: 16)) {
            try words.withUnsafeMutableBufferPointer { try memory.readWords(at: gpa(UInt64.max - 7), into: $0) }
        }
        // Empty reads succeed inside RAM; a count whose byte length overflows fails before any copy.
        try memory.readWords(at: gpa(lowEnd), into: UnsafeMutableBufferPointer(start: nil, count: 0))
        words.withUnsafeMutableBufferPointer { buffer in
            let huge = UnsafeMutableBufferPointer(start: buffer.baseAddress, count: Int.max / 4)
            #expect(throws: GuestMemoryError.outOfRange(address: gpa(0), length: .max)) {
                try memory.readWords(at: gpa(0), into: huge)
            }
        }
    }

    // MARK: GuestPhysicalAddress

    @Test func addressArithmetic() {
        #expect(gpa(0x1000).adding(0x234) == gpa(0x1234))
        #expect(gpa(UInt64.max).adding(1) == nil)
        #expect(gpa(UInt64.max - 1).adding(1) == gpa(UInt64.max))
        #expect(gpa(0x1001).alignedUp(to: 0x1000) == gpa(0x2000))
        #expect(gpa(0x2000).alignedUp(to: 0x1000) == gpa(0x2000))
        #expect(gpa(UInt64.max - 10).alignedUp(to: 0x1000) == nil)
        #expect(gpa(0x2FFF).alignedDown(to: 0x1000) == gpa(0x2000))
        #expect(gpa(0x1234).description == "gpa 0x1234")
        #expect(gpa(1) < gpa(2))
    }
}
