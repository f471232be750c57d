import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import X86

/// Reads and writes of one guest address space's virtual memory through its page tables, page by
/// page, bounds-checked by `GuestMemory`, with the rights of the user thread the monitor acts for:
/// every access is first checked as a user-mode access (present, user, and writable for a write
/// at every level), so the monitor never reads or writes what the thread itself could not, and a
/// copy-on-write page (read-only entry) is never written: the guest must fault on it first.
struct UserMemory {
    let space: AddressSpace
    let memory: GuestMemory
    /// EFER.NXE: whether execute-disable bits apply.
    let noExecute: Bool

    init(memory: GuestMemory, cr3: UInt64, cr4: UInt64, efer: UInt64 = 1 << 11) {
        self.memory = memory
        self.space = AddressSpace(memory: memory, cr3: cr3, cr4: cr4)
        self.noExecute = efer & (1 << 11) != 0
    }

    /// Throws the fault a user-mode `access` of `count` bytes at `address` would take.
    func check(_ address: UInt64, count: Int, _ access: UserAccessKind) throws(UserAccessFault) {
        try space.checkUserAccess(address, count: count, access, noExecute: noExecute)
    }

    func read(_ address: UInt64, count: Int) throws -> [UInt8] {
        try check(address, count: count, .read)
        return try space.read(GuestVirtualAddress(address), count: count)
    }

    func word(_ address: UInt64) throws -> UInt64 {
        try check(address, count: 8, .read)
        return try space.load(UInt64.self, at: GuestVirtualAddress(address))
    }

    func words(_ address: UInt64, count: Int) throws -> [UInt64] {
        try check(address, count: count &* 8, .read)
        return try space.readWords(at: GuestVirtualAddress(address), count: count)
    }

    /// Writes `bytes` if the whole range is user-writable; otherwise throws its fault and writes nothing.
    func write(_ address: UInt64, _ bytes: [UInt8]) throws {
        try check(address, count: bytes.count, .write)
        var done = 0
        while done < bytes.count {
            let va = address &+ UInt64(done)
            let inPage = min(bytes.count - done, Int(4096 - (va & 0xFFF)))
            let physical = try physicalAddress(of: va)
            try memory.write(bytes[done..<(done + inPage)], at: physical)
            done += inPage
        }
    }

    func writeWord(_ address: UInt64, _ value: UInt64) throws {
        try write(address, (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })     // little-endian
    }

    /// Throws the `UserAccessFault` that `instruction` would take in this thread with `registers`,
    /// changing nothing (its reads are made, its writes only checked).
    func checkAccesses(of instruction: PrologueInstruction, registers: GeneralRegisters) throws {
        var scratch = registers
        try instruction.execute(&scratch, readMemory: { try read($0, count: $1) },
                                writeMemory: { address, bytes in try check(address, count: bytes.count, .write) })
    }

    /// Where `address` is in guest RAM (no permission check: for locating breakpoints).
    func physicalAddress(of address: UInt64) throws -> GuestPhysicalAddress {
        try space.translate(GuestVirtualAddress(address)).physicalAddress
    }
}
