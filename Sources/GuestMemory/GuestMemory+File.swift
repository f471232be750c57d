import Glibc

/// Guest RAM to and from a file: saved sparse (all-zero pages are holes), mapped back privately
/// (copy-on-write), so a restore copies nothing until the guest writes.
extension GuestMemory {
    /// The regions' placement, in order: what `init(privateMappingOf:at:layout:)` needs back.
    public var layout: [GuestRAMExtent] { regions.map { GuestRAMExtent(start: $0.start.rawValue, size: $0.size) } }

    /// Maps guest RAM from `fd` (open for reading) with MAP_PRIVATE: the regions of `layout`, one
    /// after the other from byte `offset` (page-aligned). Nothing is copied: pages are read on first
    /// touch and copied on first write; writes never reach the file. `fd` may be closed afterwards.
    /// A file shorter than the layout is `fileTooShort` (mapping past its end would SIGBUS later).
    public convenience init(privateMappingOf fd: Int32, at offset: UInt64, layout: [GuestRAMExtent]) throws(GuestMemoryFileError) {
        try self.init(mapping: fd, at: offset, layout: layout, shared: false)
    }

    /// Maps guest RAM that another process shares through `fd` (open for reading and writing: a
    /// hypervisor's memfd or RAM file) with MAP_SHARED: reads see the guest's bytes as it writes
    /// them, and writes reach the guest. The regions of `layout` lie one after the other from `offset`.
    public convenience init(sharedMappingOf fd: Int32, at offset: UInt64, layout: [GuestRAMExtent]) throws(GuestMemoryFileError) {
        try self.init(mapping: fd, at: offset, layout: layout, shared: true)
    }

    private convenience init(mapping fd: Int32, at offset: UInt64, layout: [GuestRAMExtent], shared: Bool) throws(GuestMemoryFileError) {
        let total = try GuestRAMExtent.validate(layout)
        guard offset % GuestRAMExtent.pageSize == 0 else { throw .invalidLayout("file offset \(offset) is not page-aligned") }
        let (end, overflow) = offset.addingReportingOverflow(total)
        guard !overflow else { throw .invalidLayout("file offset \(offset) plus \(total) bytes overflows") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(operation: "fstat", errno: errno) }
        let available = UInt64(max(0, st.st_size))
        guard available >= end else { throw .fileTooShort(needed: end, available: available) }
        var regions: [GuestRAMRegion] = []
        var at = offset
        for extent in layout {
            regions.append(try GuestRAMRegion(start: GuestPhysicalAddress(extent.start), size: extent.size,
                                              mappingOf: fd, offset: at, shared: shared))
            at += extent.size  // cannot overflow: at + size <= end, checked above
        }
        self.init(regions: regions)
    }

    /// Writes every region, one after the other, into `fd` from byte `offset` (page-aligned), leaving
    /// all-zero pages as holes: the file is cut to `offset` first, non-zero pages are written, and the
    /// file is extended to `offset + totalSize`. Bytes before `offset` are kept. Returns the number of
    /// pages written. The guest must not run meanwhile (its RAM would be saved half-changed).
    /// All-zero pages of shared anonymous RAM are released afterwards (MADV_REMOVE: they read as
    /// zero again), so saving does not make the whole RAM resident.
    @discardableResult
    public func saveSparse(to fd: Int32, at offset: UInt64) throws(GuestMemoryFileError) -> Int {
        let page = Int(GuestRAMExtent.pageSize)
        guard offset % GuestRAMExtent.pageSize == 0, let start = off_t(exactly: offset) else {
            throw .invalidLayout("file offset \(offset) is not page-aligned")
        }
        let (end, overflow) = offset.addingReportingOverflow(totalSize)
        guard !overflow, let fileEnd = off_t(exactly: end) else { throw .invalidLayout("file offset \(offset) plus RAM overflows") }
        guard ftruncate(fd, start) == 0 else { throw .io(operation: "ftruncate", errno: errno) }
        let zeroPage = [UInt8](repeating: 0, count: page)
        var written = 0
        var regionOffset = start
        for region in regions {
            let pages = Int(region.size / GuestRAMExtent.pageSize)
            var index = 0
            // SAFETY: callers pass i < pages, so the page lies inside the region's mapping.
            let isZero = { (i: Int) in zeroPage.withUnsafeBytes { memcmp(region.hostAddress + i * page, $0.baseAddress!, page) == 0 } }
            while index < pages {
                if isZero(index) {
                    var zeroEnd = index + 1
                    while zeroEnd < pages, zeroEnd - index < 256, isZero(zeroEnd) { zeroEnd += 1 }
                    // Reading a never-touched page of shared anonymous memory allocated it; give the
                    // zero pages back, or saving would make all of the guest's RAM resident. Refused
                    // (harmlessly) for a private file mapping, whose holes are the file's page cache.
                    madvise(region.hostAddress + index * page, (zeroEnd - index) * page, MADV_REMOVE)
                    index = zeroEnd
                    continue
                }
                var runEnd = index + 1
                while runEnd < pages, runEnd - index < 256, !isZero(runEnd) { runEnd += 1 }
                try Self.writeFully(fd, region.hostAddress + index * page, (runEnd - index) * page,
                                    at: regionOffset + off_t(index * page))
                written += runEnd - index
                index = runEnd
            }
            regionOffset += off_t(region.size)  // cannot overflow: the total fits off_t, checked above
        }
        guard ftruncate(fd, fileEnd) == 0 else { throw .io(operation: "ftruncate", errno: errno) }
        return written
    }

    private static func writeFully(_ fd: Int32, _ source: UnsafeRawPointer, _ count: Int, at offset: off_t) throws(GuestMemoryFileError) {
        var done = 0
        while done < count {
            let n = pwrite(fd, source + done, count - done, offset + off_t(done))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io(operation: "pwrite", errno: n < 0 ? errno : EIO) }
            done += n
        }
    }
}
