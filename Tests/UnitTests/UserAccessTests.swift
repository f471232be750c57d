@testable import AllocationTracing
import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
import VMM
import X86

/// The monitor's own reads and writes in a guest process honour the page's rights for that user
/// thread (issue 11: an emulated `push` wrote 16 bytes into a read-only file mapping).
struct UserAccessTests {
    static let base: UInt64 = 0x7ffe_0000_0000
    static let writable = base, readOnly = base + 0x1000, supervisor = base + 0x2000, absent = base + 0x3000
    static let noExecute = base + 0x4000, readOnlyDirectory = base + 0x20_0000
    static let nx: UInt64 = 1 << 63

    /// 4-level tables at 0x1000.. mapping the pages above (a second PT under a read-only PD entry).
    let memory: GuestMemory
    init() throws {
        let (p, w, u): (UInt64, UInt64, UInt64) = (1, 2, 4)
        memory = try GuestMemory(size: 4 << 20)
        func set(_ table: UInt64, _ va: UInt64, _ level: Int, _ value: UInt64) throws {
            try memory.store(value, at: GuestPhysicalAddress(table + ((va >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8))
        }
        try set(0x1000, Self.base, 4, 0x2000 | p | w | u)
        try set(0x2000, Self.base, 3, 0x3000 | p | w | u)
        try set(0x3000, Self.base, 2, 0x4000 | p | w | u)
        try set(0x4000, Self.writable, 1, 0x10_0000 | p | w | u)
        try set(0x4000, Self.readOnly, 1, 0x10_1000 | p | u)
        try set(0x4000, Self.supervisor, 1, 0x10_2000 | p | w)
        try set(0x4000, Self.noExecute, 1, 0x10_4000 | p | w | u | Self.nx)
        try set(0x3000, Self.readOnlyDirectory, 2, 0x5000 | p | u)          // R/W clear one level up
        try set(0x5000, Self.readOnlyDirectory, 1, 0x10_5000 | p | w | u)
    }

    var user: UserMemory { UserMemory(memory: memory, cr3: 0x1000, cr4: 0, efer: 0x500 | 1 << 11) }

    @Test func userAccessesFaultAsTheCPUWould() throws {
        let user = self.user
        #expect(throws: Never.self) { try user.check(Self.writable, count: 8, .write) }
        #expect(throws: Never.self) { try user.check(Self.readOnly, count: 8, .read) }
        #expect(throws: UserAccessFault.pageFault(address: Self.readOnly, errorCode: 7)) { try user.check(Self.readOnly, count: 8, .write) }
        // A write that starts in a writable page and ends in a read-only one faults at the second page.
        #expect(throws: UserAccessFault.pageFault(address: Self.readOnly, errorCode: 7)) { try user.check(Self.readOnly - 4, count: 8, .write) }
        #expect(throws: UserAccessFault.pageFault(address: Self.supervisor, errorCode: 5)) { try user.check(Self.supervisor, count: 1, .read) }
        #expect(throws: UserAccessFault.pageFault(address: Self.absent, errorCode: 6)) { try user.check(Self.absent, count: 8, .write) }
        #expect(throws: UserAccessFault.pageFault(address: Self.absent, errorCode: 0x14)) { try user.check(Self.absent, count: 2, .fetch) }
        #expect(throws: UserAccessFault.pageFault(address: Self.noExecute, errorCode: 0x15)) { try user.check(Self.noExecute, count: 2, .fetch) }
        #expect(throws: UserAccessFault.pageFault(address: Self.readOnlyDirectory, errorCode: 7)) {
            try user.check(Self.readOnlyDirectory, count: 8, .write)
        }
        #expect(throws: UserAccessFault.nonCanonical(address: 0x8000_0000_0000)) { try user.check(0x8000_0000_0000, count: 8, .write) }
        #expect(throws: UserAccessFault.nonCanonical(address: UInt64.max - 3)) { try user.check(UInt64.max - 3, count: 8, .read) }
    }

    /// The stack walk's page-cached reads give what the checked reads give, and nothing where the
    /// thread could not read (a supervisor or absent page, a word straddling into one).
    @Test func stackReaderReadsOnlyWhatTheThreadCould() throws {
        let user = self.user
        try memory.store(UInt64(0x1122_3344_5566_7788), at: GuestPhysicalAddress(0x10_0000 + 0x18))
        try memory.store(UInt64(0xAABB), at: GuestPhysicalAddress(0x10_1000 + 0xFF8))
        try memory.store(UInt64(0xCCDD), at: GuestPhysicalAddress(0x10_2000))
        var reader = UserStackReader(user)
        #expect(reader.word(Self.writable + 0x18) == 0x1122_3344_5566_7788)
        #expect(reader.word(Self.writable + 0x18) == (try user.word(Self.writable + 0x18)))
        #expect(reader.word(Self.readOnly + 0xFF8) == 0xAABB)
        #expect(reader.word(Self.supervisor) == nil)
        #expect(reader.word(Self.absent + 8) == nil)
        #expect(reader.word(Self.readOnly + 0xFFC) == nil)          // runs into the supervisor page
        #expect(reader.word(Self.writable + 0xFFC) == (try user.word(Self.writable + 0xFFC)))
        #expect(reader.word(0x8000_0000_0000) == nil)
        #expect(reader.word(UInt64.max - 3) == nil)
    }

    /// The payload copy (`AddressSpace.writeUser`) stores only where the thread itself could.
    @Test func payloadCopiesGoOnlyWhereTheThreadCouldWrite() throws {
        let space = AddressSpace(memory: memory, cr3: 0x1000, cr4: 0)
        let bytes = ArraySlice((0..<16).map { UInt8($0 + 1) })
        try space.writeUser(bytes, at: Self.writable + 0x10)
        #expect(try memory.read(at: GuestPhysicalAddress(0x10_0010), count: 16) == Array(bytes))
        for target in [Self.readOnly - 8, Self.supervisor, Self.absent, 0x8000_0000_0000, UInt64.max - 3] {
            #expect(throws: UserAccessFault.self) { try space.writeUser(bytes, at: target) }
        }
        // The refused write across the writable/read-only boundary left the writable half alone.
        #expect(try memory.read(at: GuestPhysicalAddress(0x10_0FF8), count: 8) == [UInt8](repeating: 0, count: 8))
        #expect(try memory.read(at: GuestPhysicalAddress(0x10_2000), count: 16) == [UInt8](repeating: 0, count: 16))
    }

    @Test func aWriteTheThreadCouldNotMakeWritesNothing() throws {
        let user = self.user
        #expect(throws: UserAccessFault.self) { try user.writeWord(Self.readOnly - 4, 0x1122_3344_5566_7788) }
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_0FF8)) == 0)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_1000)) == 0)
        #expect(throws: UserAccessFault.self) { try user.writeWord(Self.readOnlyDirectory, 1) }
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_5000)) == 0)
        try user.writeWord(Self.writable + 8, 0xAB)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_0008)) == 0xAB)
    }

    @Test func aPushThroughAReadOnlyPageBecomesTheGuestsPageFault() throws {
        let push = try #require(PrologueInstruction.decode([0x55]))       // push rbp
        var registers = GeneralRegisters()
        registers.rsp = Self.readOnly + 0x10
        registers.rbp = 0x4141_4141
        #expect(throws: UserAccessFault.pageFault(address: Self.readOnly + 8, errorCode: 7)) {
            try user.checkAccesses(of: push, registers: registers)
        }
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_1008)) == 0)
        let fault = UserAccessFault.pageFault(address: Self.readOnly + 8, errorCode: 7)
        #expect(InjectedException(fault, stack: true) == InjectedException(vector: 14, errorCode: 7, faultAddress: Self.readOnly + 8))
        #expect(InjectedException(.nonCanonical(address: 0x8000_0000_0000), stack: true) == InjectedException(vector: 12, errorCode: 0))
        #expect(InjectedException(.nonCanonical(address: 0x8000_0000_0000), stack: false) == InjectedException(vector: 13, errorCode: 0))
        // A writable stack: the push is emulated and nothing is checked away.
        registers.rsp = Self.writable + 0x10
        #expect(throws: Never.self) { try user.checkAccesses(of: push, registers: registers) }
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x10_0008)) == 0)
    }
}
