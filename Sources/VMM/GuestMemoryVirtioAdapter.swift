import Devices
import GuestMemory

/// Lets virtio devices reach guest RAM through `GuestMemory`'s bounds-checked accessors; their
/// writes thereby reach page-write tracking (`GuestMemory.recordHostWrites`).
struct GuestMemoryVirtioAdapter: VirtioMemory {
    let memory: GuestMemory

    func contains(_ address: UInt64, count: Int) -> Bool {
        memory.contains(GuestPhysicalAddress(address), length: count)
    }

    func read(at address: UInt64, count: Int) throws -> [UInt8] {
        try memory.read(at: GuestPhysicalAddress(address), count: count)
    }

    func write(_ bytes: [UInt8], at address: UInt64) throws {
        try memory.write(bytes, at: GuestPhysicalAddress(address))
    }
}
