import Glibc
import GuestMemory
import KVM
import Synchronization

/// Guest page-write tracking: KVM's dirty log (KVM_GET_DIRTY_LOG) for what the guest and KVM
/// write, merged with `GuestMemory`'s record of what the VMM writes. KVM slot `i` must map
/// `memory.regions[i]`, as `Machine` registers them. Off until `enable()`; while on, the first
/// guest write to each page in an interval costs a write-protection fault.
public final class DirtyPageLog: GuestWriteTracking {
    private let vm: VirtualMachine
    private let memory: GuestMemory
    /// Whether logging is on. Holding it serializes harvests, enabling and disabling.
    private let enabled = Mutex(false)

    public init(vm: VirtualMachine, memory: GuestMemory) {
        self.vm = vm
        self.memory = memory
    }

    /// Turns logging on for every RAM slot and starts the first interval. Does nothing if on.
    public func enable() throws(VMMError) {
        try enabled.withLock { (on: inout Bool) throws(VMMError) in
            guard !on else { return }
            try logDirtyPages(true)
            memory.recordHostWrites(true)
            on = true
        }
    }

    /// Turns logging off and drops what the current interval recorded. Does nothing if off.
    public func disable() throws(VMMError) {
        try enabled.withLock { (on: inout Bool) throws(VMMError) in
            guard on else { return }
            memory.recordHostWrites(false)
            try logDirtyPages(false)
            on = false
        }
    }

    /// The frames written since the previous harvest or `enable()`. `endedAt` is read before the
    /// logs are: every write logged (by KVM or `GuestMemory`) before it is in this harvest or an
    /// earlier one.
    public func harvest() throws(VMMError) -> WrittenFrames {
        try enabled.withLock { (on: inout Bool) throws(VMMError) -> WrittenFrames in
            guard on else { throw .configuration("guest page-write tracking is not enabled") }
            let endedAt = monotonicNanoseconds()
            var frames = try kvmLoggedFrames() + memory.takeHostWrittenFrames()
            frames.sort()
            return WrittenFrames(frames: frames.uniqued(), endedAt: endedAt)
        }
    }

    /// The frames KVM logged as written in every RAM slot since the last call; re-arms the log.
    private func kvmLoggedFrames() throws(VMMError) -> [UInt64] {
        var frames: [UInt64] = []
        do {
            for (slot, region) in memory.regions.enumerated() {
                let bitmap = try vm.dirtyLog(slot: UInt32(slot), pageCount: Int(region.size >> 12))
                FrameBitmap.appendFrames(of: bitmap, firstFrame: region.start.rawValue >> 12, to: &frames)
            }
        } catch { throw .kvm(error) }
        return frames
    }

    /// Re-registers every RAM slot with KVM_MEM_LOG_DIRTY_PAGES set or clear (same slot, address, size).
    private func logDirtyPages(_ on: Bool) throws(VMMError) {
        try Self.registerSlots(vm: vm, memory: memory, logDirtyPages: on)
    }

    /// Registers RAM region `i` of `memory` as KVM slot `i`: the numbering the dirty log relies on.
    static func registerSlots(vm: VirtualMachine, memory: GuestMemory, logDirtyPages: Bool) throws(VMMError) {
        do {
            for (slot, region) in memory.regions.enumerated() {
                try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.start.rawValue, size: region.size,
                                           hostAddress: region.hostAddress, logDirtyPages: logDirtyPages)
            }
        } catch { throw .kvm(error) }
    }

    private func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

private extension [UInt64] {
    /// A sorted array without its repeats.
    func uniqued() -> [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(count)
        for value in self where value != result.last { result.append(value) }
        return result
    }
}
