import DebugInfo
import Introspection
import X86

/// The program headers a scan needs from a loaded ELF object, read from the guest's own mapping
/// of the file (bounded reads; anything malformed gives nil, never a crash).
struct ELFSegments: Sendable {
    /// Run-time range of PT_GNU_RELRO, if any.
    var relocationReadOnly: Range<UInt64>?
    /// PT_TLS memory size rounded up to its alignment (0 without TLS).
    var threadLocalBytes: UInt64

    static let maximumHeaders = 64

    /// Reads the ELF header and program headers at `mappingStart` (the file's offset-0 mapping).
    static func read(mappingStart: UInt64, mappingEnd: UInt64, space: AddressSpace) -> ELFSegments? {
        guard let headers = programHeaders(mappingStart: mappingStart, mappingEnd: mappingEnd, space: space) else { return nil }
        // Without a PT_LOAD of the headers' page the run-time place of RELRO is unknown: none is given.
        let bias = headers.loadBias(mappingStart: mappingStart)
        var result = ELFSegments(relocationReadOnly: nil, threadLocalBytes: 0)
        for header in headers {
            switch header.type {
            case ELFProgramHeader.relocationReadOnlyType where header.memorySize > 0 && header.memorySize < 1 << 32:
                guard let bias else { continue }
                let start = bias &+ header.virtualAddress
                if start < start &+ header.memorySize { result.relocationReadOnly = start..<(start &+ header.memorySize) }
            case ELFProgramHeader.threadLocalType:
                let a = max(1, min(header.alignment, 4096))
                result.threadLocalBytes = (min(header.memorySize, 1 << 20) + a - 1) / a * a
            default: break
            }
        }
        return result
    }

    /// The program headers of a little-endian ELF64 file whose headers lie in its mapping.
    static func programHeaders(mappingStart: UInt64, mappingEnd: UInt64, space: AddressSpace) -> [ELFProgramHeader]? {
        guard let header = try? space.read(GuestVirtualAddress(mappingStart), count: 64),
              header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46, header[4] == 2 else { return nil }
        func u64(_ b: [UInt8], _ o: Int, _ width: Int = 8) -> UInt64 {
            (0..<width).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
        }
        let phoff = u64(header, 32), entrySize = u64(header, 54, 2), count = u64(header, 56, 2)
        // The table must lie inside the mapping; phoff is the file's (guest) value, so compare without adding to it.
        guard mappingEnd > mappingStart, entrySize == 56, count > 0, count <= UInt64(maximumHeaders) else { return nil }
        let mappingSize = mappingEnd - mappingStart
        guard phoff < mappingSize, count * 56 <= mappingSize - phoff,
              let table = try? space.read(GuestVirtualAddress(mappingStart + phoff), count: Int(count * 56)) else { return nil }
        return (0..<Int(count)).map { i in
            let o = i * 56
            return ELFProgramHeader(type: UInt32(u64(table, o, 4)), flags: UInt32(u64(table, o + 4, 4)), offset: u64(table, o + 8),
                                    virtualAddress: u64(table, o + 16), physicalAddress: u64(table, o + 24),
                                    fileSize: u64(table, o + 32), memorySize: u64(table, o + 40), alignment: u64(table, o + 48))
        }
    }
}
