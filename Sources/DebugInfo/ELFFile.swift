import CElfDW
import Glibc

/// A host ELF file opened read-only through libelf: header, program headers and build ID are read
/// when it opens; sections and symbols on request.
///
/// Owns the file descriptor and the libelf handle and frees them when released. Section data is
/// read with `pread` on demand (not mapped), so a file truncated while open yields errors rather than
/// `SIGBUS`. Use an instance from one thread at a time.
public final class ELFFile {
    public let path: String
    public let elfClass: ELFClass
    public let objectType: ELFObjectType
    /// `e_machine` (62 = x86-64).
    public let machine: UInt16
    /// `e_entry`: the link-time entry point.
    public let entry: UInt64
    public let programHeaders: [ELFProgramHeader]
    /// The GNU build ID (`NT_GNU_BUILD_ID` note), if the file has one.
    public let buildID: [UInt8]?

    /// The libelf handle (`Elf *`), valid as long as this object.
    let elf: OpaquePointer
    private let descriptor: Int32

    /// Opens `path` and reads its ELF header, program headers and build ID.
    public init(path: String) throws(DebugInfoError) {
        DebugInfo.ensureLibraryInitialised()
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // a FIFO must not block us
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw .cannotOpen(path: path, errno: code)
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .notRegularFile(path: path)
        }
        guard let handle = elf_begin(fd, ELF_C_READ, nil) else {
            close(fd)
            throw status.st_size < 16 ? .notELF(path: path) : .malformedELF(path: path, reason: libelfMessage())
        }
        do throws(DebugInfoError) {
            guard elf_kind(handle) == ELF_K_ELF else { throw .notELF(path: path) }
            var header = GElf_Ehdr()
            guard gelf_getehdr(handle, &header) != nil else {
                throw .malformedELF(path: path, reason: "ELF header: \(libelfMessage())")
            }
            elfClass = gelf_getclass(handle) == ELFCLASS32 ? .elf32 : .elf64
            objectType = ELFObjectType(rawType: header.e_type)
            machine = header.e_machine
            entry = header.e_entry
            try Self.checkHeaderTables(header, elf: handle, fileSize: UInt64(max(status.st_size, 0)), path: path)
            programHeaders = try Self.readProgramHeaders(handle, path: path)
            buildID = Self.readBuildID(handle)
        } catch {
            elf_end(handle)
            close(fd)
            throw error
        }
        self.path = path
        elf = handle
        descriptor = fd
    }

    deinit {
        elf_end(elf)
        close(descriptor)
    }

    /// The `PT_LOAD` segments, in file order.
    public var loadSegments: [ELFProgramHeader] { programHeaders.filter(\.isLoad) }

    /// The load bias (runtime − link-time address) when the page at file offset `fileOffset` is
    /// mapped at `mappingStart` (as in a `/proc/PID/maps` line), or nil if no `PT_LOAD` segment starts
    /// on that page. 0 for an `ET_EXEC` file mapped where it was linked.
    public func loadBias(mappingStart: UInt64, fileOffset: UInt64 = 0, pageSize: UInt64 = 4096) -> UInt64? {
        programHeaders.loadBias(mappingStart: mappingStart, fileOffset: fileOffset, pageSize: pageSize)
    }

    /// Checks that the program and section header tables the ELF header describes lie inside the
    /// file and have the entry sizes of its class (libelf silently shortens tables cut off by a
    /// truncated file).
    private static func checkHeaderTables(_ header: GElf_Ehdr, elf: OpaquePointer, fileSize: UInt64, path: String)
        throws(DebugInfoError)
    {
        let is64 = gelf_getclass(elf) == ELFCLASS64
        func check(_ table: String, offset: UInt64, count: UInt64, entrySize: UInt64, expectedEntrySize: UInt64)
            throws(DebugInfoError)
        {
            guard count > 0 else { return }
            guard entrySize == expectedEntrySize else {
                throw .malformedELF(path: path, reason: "\(table) entries are \(entrySize) bytes, not \(expectedEntrySize)")
            }
            let (size, overflow) = count.multipliedReportingOverflow(by: entrySize)
            guard !overflow, offset <= fileSize, size <= fileSize - offset else {
                throw .malformedELF(
                    path: path, reason: "\(count) \(table) at offset \(offset) extend past the end of the \(fileSize)-byte file")
            }
        }
        var programCount = 0
        var sectionCount = 0
        guard elf_getphdrnum(elf, &programCount) == 0, elf_getshdrnum(elf, &sectionCount) == 0 else {
            throw .malformedELF(path: path, reason: "header tables: \(libelfMessage())")
        }
        // 0xFFFF (PN_XNUM) and 0 with a table present mean the count is in section header 0.
        let declaredPrograms = header.e_phnum == 0xFFFF ? UInt64(programCount) : UInt64(header.e_phnum)
        let declaredSections =
            header.e_shnum == 0 && header.e_shoff != 0 ? UInt64(max(sectionCount, 1)) : UInt64(header.e_shnum)
        try check(
            "program headers", offset: header.e_phoff, count: declaredPrograms, entrySize: UInt64(header.e_phentsize),
            expectedEntrySize: is64 ? 56 : 32)
        try check(
            "section headers", offset: header.e_shoff, count: header.e_shoff == 0 ? 0 : declaredSections,
            entrySize: UInt64(header.e_shentsize), expectedEntrySize: is64 ? 64 : 40)
        guard UInt64(programCount) == declaredPrograms,
            header.e_shoff == 0 || header.e_shnum == 0 || UInt64(sectionCount) == declaredSections
        else {
            throw .malformedELF(path: path, reason: "libelf sees \(programCount) program and \(sectionCount) section headers")
        }
    }

    /// The runtime addresses the `PT_LOAD` segments cover, from the first segment's page to the
    /// end of the highest one, when loaded with `loadBias` (ignored for ET_EXEC); nil without
    /// loadable segments or if the range wraps around.
    public func loadedAddressRange(loadBias: UInt64, pageSize: UInt64 = 4096) -> Range<UInt64>? {
        let bias = objectType == .executable ? 0 : loadBias
        let segments = loadSegments.filter { $0.memorySize > 0 }
        guard pageSize.nonzeroBitCount == 1, let lowest = segments.map(\.virtualAddress).min() else { return nil }
        var highest: UInt64 = 0
        for segment in segments {
            let (end, overflow) = segment.virtualAddress.addingReportingOverflow(segment.memorySize)
            guard !overflow else { return nil }
            highest = max(highest, end)
        }
        let (start, startOverflow) = (lowest & ~(pageSize - 1)).addingReportingOverflow(bias)
        let (end, endOverflow) = highest.addingReportingOverflow(bias)
        guard !startOverflow, !endOverflow, start < end else { return nil }
        return start..<end
    }

    private static func readProgramHeaders(_ elf: OpaquePointer, path: String) throws(DebugInfoError)
        -> [ELFProgramHeader]
    {
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else {
            throw .malformedELF(path: path, reason: "program header count: \(libelfMessage())")
        }
        var headers: [ELFProgramHeader] = []
        headers.reserveCapacity(count)
        for index in 0..<count {
            var header = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(clamping: index), &header) != nil else {
                throw .malformedELF(path: path, reason: "program header \(index): \(libelfMessage())")
            }
            headers.append(
                ELFProgramHeader(
                    type: header.p_type, flags: header.p_flags, offset: header.p_offset,
                    virtualAddress: header.p_vaddr, physicalAddress: header.p_paddr,
                    fileSize: header.p_filesz, memorySize: header.p_memsz, alignment: header.p_align))
        }
        return headers
    }

    private static func readBuildID(_ elf: OpaquePointer) -> [UInt8]? {
        var bits: UnsafeRawPointer?
        let length = dwelf_elf_gnu_build_id(elf, &bits)
        guard length > 0, let bits else { return nil }
        // SAFETY: dwelf_elf_gnu_build_id points `bits` at `length` (> 0) bytes inside the Elf image, copied out at once.
        return Array(UnsafeRawBufferPointer(start: bits, count: length))
    }
}

extension ELFFile {
    /// `count` bytes of the file starting at `fileOffset` (libelf checks they lie inside the file).
    public func bytes(atFileOffset fileOffset: UInt64, count: Int) throws(DebugInfoError) -> [UInt8] {
        guard count > 0 else { return [] }
        guard fileOffset <= UInt64(Int64.max),
            let data = elf_getdata_rawchunk(elf, Int64(fileOffset), count, ELF_T_BYTE),
            data.pointee.d_size == count, let buffer = data.pointee.d_buf
        else {
            throw .malformedELF(path: path, reason: "\(count) bytes at file offset \(fileOffset): \(libelfMessage())")
        }
        // SAFETY: the raw chunk's d_size was checked equal to `count` above; copied out while the Elf handle lives.
        return Array(UnsafeRawBufferPointer(start: buffer, count: count))
    }
}
