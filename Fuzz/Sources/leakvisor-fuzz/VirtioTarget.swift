import Devices
import Glibc
import GuestMemory

/// A virtio-blk device on its MMIO transport, driven by the input: the first 64 KiB of guest RAM
/// (a length, then the bytes: descriptor tables, rings, requests), then register accesses
/// (kind: read or write and width, offset in the window, value) until the input ends.
enum VirtioTarget {
    static let memorySize = 64 << 10
    static let ramSize: UInt64 = 1 << 20
    nonisolated(unsafe) static var memory: GuestMemory?
    nonisolated(unsafe) static var block: VirtioBlock?

    /// Guest RAM as the device sees it.
    struct Memory: VirtioMemory {
        let memory: GuestMemory
        func contains(_ address: UInt64, count: Int) -> Bool { memory.contains(GuestPhysicalAddress(address), length: count) }
        func read(at address: UInt64, count: Int) throws -> [UInt8] { try memory.read(at: GuestPhysicalAddress(address), count: count) }
        func write(_ bytes: [UInt8], at address: UInt64) throws { try memory.write(bytes, at: GuestPhysicalAddress(address)) }
    }

    static let target = FuzzTarget(name: "virtio", prepare: {
        memory = try? GuestMemory(size: ramSize)
        var template = Array("/tmp/leakvisor-fuzz-disk-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return }
        unlink(template)
        guard ftruncate(fd, 64 * 512) == 0 else { return }
        block = VirtioBlock(fd: fd, size: 64 * 512, readOnly: false, serial: "fuzz")
    }) { input in
        guard let memory, let block else { return }
        var input = input
        let image = input.take(Int(input.u16()))
        try? memory.fill(0, at: GuestPhysicalAddress(0), count: Int(ramSize))
        try? memory.write(image, at: GuestPhysicalAddress(0))
        let transport = VirtioMMIOTransport(device: block, memory: Memory(memory: memory), setIRQ: { _ in })
        var operations = 0
        while !input.isAtEnd, operations < 256 {
            operations += 1
            let kind = input.u8()
            let offset = UInt64(input.u16()) % VirtioMMIOTransport.windowSize
            let value = input.u32()
            let width = [1, 2, 4, 8][Int(kind >> 1) & 3]
            if kind & 1 == 0 {
                let bytes = (0..<width).map { UInt8(truncatingIfNeeded: UInt64(value) >> (8 * UInt64($0 % 4))) }
                bytes.withUnsafeBytes { transport.write(offset: offset, from: $0) }
            } else {
                var bytes = [UInt8](repeating: 0, count: width)
                bytes.withUnsafeMutableBytes { transport.read(offset: offset, into: $0) }
            }
        }
    }
}
