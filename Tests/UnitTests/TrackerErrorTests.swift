@testable import AllocationTracing
import GuestMemory
import Testing

/// Arming errors keep what failed as values and print the same text as before they did (issue 12).
struct TrackerErrorTests {
    @Test func aKernelHookRefusalKeepsTheBytesAndItsText() {
        let error = TrackerError.kernelHook("mmap_region", firstBytes: [0xE8, 0x01, 0x00, 0x00, 0x00])
        #expect(error.description == "cannot hook the guest kernel's mmap_region: it starts with e8 01 00 00 00, not the 5-byte ftrace nop (is ftrace tracing it?)")
        guard case .kernelHook(_, let bytes) = error else { Issue.record("\(error)"); return }
        #expect(bytes == [0xE8, 0x01, 0x00, 0x00, 0x00])
    }

    @Test func anUnderlyingErrorPrintsAsItself() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let underlying: GuestMemoryError
        do { _ = try memory.read(at: GuestPhysicalAddress(0x20_0000), count: 8); Issue.record("read outside RAM"); return } catch { underlying = error }
        #expect(TrackerError.memory(underlying).description == "\(underlying)")
    }
}
