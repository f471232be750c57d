import Glibc

/// One contiguous range of guest RAM backed by a host mapping: anonymous shared (our own VMs), a
/// snapshot file's private mapping, or another hypervisor's shared RAM.
// SAFETY: @unchecked Sendable: start, size and the mapping address never change; the bytes behind it are shared with the guest by design and accessed only through bounds-checked copies.
public final class GuestRAMRegion: @unchecked Sendable {
    public let start: GuestPhysicalAddress
    public let size: UInt64
    /// Host address of the mapping. Only the KVM memory-slot setup and this module touch it.
    public let hostAddress: UnsafeMutableRawPointer

    init(start: GuestPhysicalAddress, size: UInt64) throws(GuestMemoryError) {
        guard size > 0, start.adding(size) != nil else { throw .invalidLayout("region at \(start) of \(size) bytes") }
        // A size no mapping can have (above Int.max) fails like any mapping the host refuses.
        guard let length = Int(exactly: size) else { throw .hostAllocationFailed(bytes: size) }
        // SAFETY: an anonymous mapping of `length` bytes owned by this object (unmapped in deinit).
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw .hostAllocationFailed(bytes: size) }
        self.start = start
        self.size = size
        self.hostAddress = p
    }

    /// A region backed by a mapping of `size` bytes of file `fd` at `offset`: private (copy-on-write:
    /// reads see the file, writes stay in this process) or shared (writes reach the file and every
    /// process mapping it). The caller has checked that the file holds them and that `offset` is page-aligned.
    init(start: GuestPhysicalAddress, size: UInt64, mappingOf fd: Int32, offset: UInt64, shared: Bool) throws(GuestMemoryFileError) {
        guard size > 0, start.adding(size) != nil, let length = Int(exactly: size), let fileOffset = off_t(exactly: offset) else {
            throw .invalidLayout("region at \(start) of \(size) bytes from file offset \(offset)")
        }
        // SAFETY: a mapping of `length` bytes owned by this object (unmapped in deinit).
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_NORESERVE, fd, fileOffset)
        guard let p, p != MAP_FAILED else { throw .mapFailed(bytes: size, errno: errno) }
        self.start = start
        self.size = size
        self.hostAddress = p
    }

    // SAFETY: the mapping made in init (its size fits Int, checked there); KVM slots using it belong to the machine that owns this region.
    deinit { munmap(hostAddress, Int(size)) }

    /// Offset of [address, address+length) inside this region, or nil if not entirely inside.
    func offset(of address: GuestPhysicalAddress, length: Int) -> Int? {
        guard length >= 0, address >= start else { return nil }
        let off = address.rawValue - start.rawValue
        let (end, overflow) = off.addingReportingOverflow(UInt64(length))
        guard !overflow, end <= size else { return nil }
        return Int(off)
    }

    public var end: GuestPhysicalAddress { GuestPhysicalAddress(start.rawValue + size) }
}
