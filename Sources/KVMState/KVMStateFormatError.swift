/// Why bytes are not a valid encoded `VMState`/`VCPUState`. A snapshot is untrusted input:
/// every malformed, truncated or corrupt encoding ends in one of these, never in a trap.
public enum KVMStateFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(offset: Int, needed: Int, available: Int)
    case badMagic
    case unsupportedVersion(UInt32)
    case lengthMismatch(declared: UInt64, actual: Int)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case unknownSection(tag: UInt32, in: String)
    case duplicateSection(tag: UInt32, in: String)
    case missingSection(String)
    case badSectionLength(section: String, length: Int, expected: String)
    case tooMany(String, count: Int, limit: Int)

    public var description: String {
        switch self {
        case .truncated(let offset, let needed, let available):
            return "KVM state is truncated: \(needed) bytes needed at offset \(offset), \(available) left"
        case .badMagic: return "not a LeakVisor KVM state (bad magic)"
        case .unsupportedVersion(let v):
            return "KVM state format version \(v) is not supported (this build reads version \(KVMStateFormat.version))"
        case .lengthMismatch(let declared, let actual):
            return "KVM state declares \(declared) payload bytes but has \(actual)"
        case .checksumMismatch(let stored, let computed):
            return "KVM state is corrupt: CRC-32 is 0x\(String(computed, radix: 16)), header says 0x\(String(stored, radix: 16))"
        case .unknownSection(let tag, let place): return "unknown section \(tag) in \(place)"
        case .duplicateSection(let tag, let place): return "section \(tag) appears twice in \(place)"
        case .missingSection(let name): return "required section \(name) is missing"
        case .badSectionLength(let section, let length, let expected):
            return "section \(section) has \(length) bytes, expected \(expected)"
        case .tooMany(let what, let count, let limit): return "\(count) \(what) (at most \(limit) accepted)"
        }
    }
}
