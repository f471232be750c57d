/// Word size of an ELF file (`EI_CLASS`).
public enum ELFClass: Sendable, Equatable {
    case elf32
    case elf64
}

/// What an ELF file is (`e_type`): a fixed-address executable, a position-independent object, …
public enum ELFObjectType: Sendable, Equatable {
    /// `ET_REL`: an object file, not loadable as is.
    case relocatable
    /// `ET_EXEC`: loads at its link-time addresses (load bias 0).
    case executable
    /// `ET_DYN`: shared library or PIE; loads anywhere (load bias = runtime − link-time address).
    case sharedObject
    /// `ET_CORE`: a core dump.
    case core
    /// Any other `e_type` value.
    case other(UInt16)

    init(rawType: UInt16) {
        switch rawType {
        case 1: self = .relocatable
        case 2: self = .executable
        case 3: self = .sharedObject
        case 4: self = .core
        default: self = .other(rawType)
        }
    }
}

/// One program header (segment) of an ELF file.
public struct ELFProgramHeader: Sendable, Equatable {
    /// `p_type` (`PT_LOAD` = 1, `PT_NOTE` = 4, …).
    public var type: UInt32
    /// `p_flags`: `PF_X` = 1, `PF_W` = 2, `PF_R` = 4.
    public var flags: UInt32
    public var offset: UInt64
    public var virtualAddress: UInt64
    public var physicalAddress: UInt64
    public var fileSize: UInt64
    public var memorySize: UInt64
    public var alignment: UInt64

    public static let loadType: UInt32 = 1
    public static let noteType: UInt32 = 4
    public static let threadLocalType: UInt32 = 7
    /// `PT_GNU_RELRO`: the part of the data made read-only after relocation.
    public static let relocationReadOnlyType: UInt32 = 0x6474_E552

    public var isLoad: Bool { type == Self.loadType }
    public var isExecutable: Bool { flags & 1 != 0 }
    public var isWritable: Bool { flags & 2 != 0 }
    public var isReadable: Bool { flags & 4 != 0 }

    public init(
        type: UInt32, flags: UInt32, offset: UInt64, virtualAddress: UInt64, physicalAddress: UInt64,
        fileSize: UInt64, memorySize: UInt64, alignment: UInt64
    ) {
        self.type = type
        self.flags = flags
        self.offset = offset
        self.virtualAddress = virtualAddress
        self.physicalAddress = physicalAddress
        self.fileSize = fileSize
        self.memorySize = memorySize
        self.alignment = alignment
    }
}

extension Sequence<ELFProgramHeader> {
    /// The load bias (runtime − link-time address) when the page at file offset `fileOffset` is
    /// mapped at `mappingStart` (as in a `/proc/PID/maps` line), or nil if no `PT_LOAD` segment starts
    /// on that page. 0 for an `ET_EXEC` file mapped where it was linked.
    public func loadBias(mappingStart: UInt64, fileOffset: UInt64 = 0, pageSize: UInt64 = 4096) -> UInt64? {
        guard pageSize.nonzeroBitCount == 1 else { return nil }
        let pageMask = ~(pageSize - 1)
        guard let segment = first(where: { $0.isLoad && $0.offset & pageMask == fileOffset }) else { return nil }
        return mappingStart &- (segment.virtualAddress & pageMask)
    }
}

/// A section read from an ELF file: its header fields and (decompressed) contents.
public struct ELFSection: Sendable, Equatable {
    public var name: String
    /// `sh_type` (`SHT_PROGBITS` = 1, `SHT_NOBITS` = 8, …).
    public var type: UInt32
    public var flags: UInt64
    /// `sh_addr`: link-time address, 0 for sections not loaded into memory (such as `.BTF`).
    public var address: UInt64
    /// Size in memory; for `SHT_NOBITS` (`.bss`) `bytes` is empty.
    public var size: UInt64
    /// File contents, decompressed when the section is `SHF_COMPRESSED`.
    public var bytes: [UInt8]
}
