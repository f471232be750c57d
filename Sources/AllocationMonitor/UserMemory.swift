import GuestMemory
import Introspection

/// Reads and writes of one guest address space's virtual memory through its page tables, page by
/// page, bounds-checked by `GuestMemory`. Writes go only to RAM the translation names.
struct UserMemory {
    let space: AddressSpace
    let memory: GuestMemory

    init(memory: GuestMemory, cr3: UInt64, cr4: UInt64) {
        self.memory = memory
        self.space = AddressSpace(memory: memory, cr3: cr3, cr4: cr4)
    }

    func read(_ address: UInt64, count: Int) throws -> [UInt8] {
        try space.read(GuestVirtualAddress(address), count: count)
    }

    func word(_ address: UInt64) throws -> UInt64 {
        try space.load(UInt64.self, at: GuestVirtualAddress(address))
    }

    func write(_ address: UInt64, _ bytes: [UInt8]) throws {
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
        try write(address, withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    func physicalAddress(of address: UInt64) throws -> GuestPhysicalAddress {
        try space.translate(GuestVirtualAddress(address)).physicalAddress
    }
}
