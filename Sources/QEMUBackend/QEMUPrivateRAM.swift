import CUserfaultfd
import Foundation
import GuestMemory
import Synchronization

/// Guest RAM that a QEMU process keeps as private anonymous memory (no shared mapping to map):
/// mirrored in local memory laid out as the guest sees it, each page fetched from the process's
/// `/proc/PID/mem` when first touched (userfaultfd), all of them dropped whenever the guest
/// stops (`guestStopped`), and the frames the monitor wrote pushed back (`commit`) while it is
/// stopped. Reads while the guest runs may race with its writes, as with shared RAM.
public final class QEMUPrivateRAM: Sendable {
    public let memory: GuestMemory
    private let server: PageServer

    /// What the fault thread and the owner share.
    final class PageServer: Sendable {
        let faults: Int32
        let processMemory: Int32
        let memory: GuestMemory
        /// Host address of the guest's RAM block in the QEMU process (guest RAM is contiguous in it).
        let blockAddress: UInt64
        let running = Atomic(true)
        let pagesFetched = Atomic(0)

        init(faults: Int32, processMemory: Int32, memory: GuestMemory, blockAddress: UInt64) {
            (self.faults, self.processMemory, self.memory, self.blockAddress) = (faults, processMemory, memory, blockAddress)
        }

        /// The address in the QEMU process of the local mirror's byte at `host`, if it is in the mirror.
        func source(ofLocal host: UInt64) -> UInt64? {
            var offset: UInt64 = 0
            for region in memory.regions {
                let start = UInt64(UInt(bitPattern: region.hostAddress))
                if host >= start && host < start + region.size { return blockAddress &+ offset &+ (host - start) }
                offset += region.size
            }
            return nil
        }

        /// Serves missing-page faults until `running` goes false, then closes the descriptors.
        func serve() {
            defer {
                close(faults)
                close(processMemory)
            }
            let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
            defer { page.deallocate() }
            while running.load(ordering: .acquiring) {
                var address: UInt64 = 0
                guard lv_uffd_next_fault(faults, 200, &address) == 1 else { continue }
                let pageAddress = address & ~4095
                if let source = source(ofLocal: pageAddress), pread(processMemory, page, 4096, off_t(truncatingIfNeeded: source)) == 4096 {
                    pagesFetched.add(1, ordering: .relaxed)
                } else {
                    // Unreadable in the QEMU process (it is going away): the reader gets zeros.
                    page.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
                }
                _ = lv_uffd_copy(faults, UnsafeMutableRawPointer(bitPattern: UInt(pageAddress)), page, 4096)
            }
        }
    }

    /// Mirrors `layout` (QEMU's placement) of the RAM block at `blockAddress` in process `pid`.
    public init(pid: Int32, blockAddress: UInt64, layout: [GuestRAMExtent]) throws(QEMUBackendError) {
        let total = layout.reduce(0) { $0 + $1.size }
        let low = layout.first?.size ?? 0
        let memory: GuestMemory
        do {
            memory = try GuestMemory(size: total, lowLimit: layout.count > 1 ? low : max(total, 1 << 20))
        } catch {
            throw .ramMapping(path: "/proc/\(pid)/mem", .invalidLayout("\(error)"))
        }
        let path = "/proc/\(pid)/mem"
        let processMemory = open(path, O_RDWR | O_CLOEXEC)
        guard processMemory >= 0 else { throw .open(path: path, errno: errno) }
        let faults = lv_uffd_open()
        guard faults >= 0 else {
            let error = errno
            close(processMemory)
            throw .open(path: "userfaultfd", errno: error)
        }
        for region in memory.regions where lv_uffd_register(faults, region.hostAddress, Int(region.size)) != 0 {
            let error = errno
            close(faults)
            close(processMemory)
            throw .open(path: "userfaultfd registration", errno: error)
        }
        self.memory = memory
        let server = PageServer(faults: faults, processMemory: processMemory, memory: memory, blockAddress: blockAddress)
        self.server = server
        Thread.detachNewThread { server.serve() }
    }

    deinit {
        // The fault thread sees this within its poll interval and closes the descriptors.
        server.running.store(false, ordering: .releasing)
    }

    /// Pages read from the QEMU process so far.
    public var pagesFetched: Int { server.pagesFetched.load(ordering: .relaxed) }

    /// The guest stopped: drops every page read so far, so that each is read again as it is now.
    public func guestStopped() {
        for region in memory.regions {
            // SAFETY: the region's own mapping; MADV_REMOVE frees its pages (they fault in again).
            madvise(region.hostAddress, Int(region.size), MADV_REMOVE)
        }
    }

    /// Writes `frames` (guest frame numbers) from the mirror into the guest (the guest stopped).
    public func commit(frames: [UInt64]) throws(QEMUBackendError) {
        for frame in frames {
            guard let bytes = try? memory.read(at: GuestPhysicalAddress(frame << 12), count: 4096),
                  let local = memory.regions.first(where: { GuestPhysicalAddress(frame << 12) >= $0.start && GuestPhysicalAddress(frame << 12) < $0.end }),
                  let target = server.source(ofLocal: UInt64(UInt(bitPattern: local.hostAddress)) + (frame << 12 - local.start.rawValue)) else { continue }
            let written = bytes.withUnsafeBytes { pwrite(server.processMemory, $0.baseAddress, 4096, off_t(truncatingIfNeeded: target)) }
            guard written == 4096 else { throw .open(path: "/proc/PID/mem (write)", errno: errno) }
        }
    }
}
