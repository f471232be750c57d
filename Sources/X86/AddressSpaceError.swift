import GuestMemory

/// Why a read of guest-virtual memory failed. Addresses name the first byte that could not be
/// read (for a read spanning pages, the start of the failing page's part).
public enum AddressSpaceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The page holding the address could not be translated.
    case translationFailed(TranslationError)
    /// The page translates to guest-physical memory that is not RAM.
    case physicalOutsideMemory(GuestVirtualAddress, physical: GuestPhysicalAddress, length: Int)
    /// A negative length, or more bytes than the reader allows in one read.
    case lengthOutOfRange(GuestVirtualAddress, length: Int, limit: Int)
    /// The range runs past the top of the 64-bit address space.
    case rangeWrapsAround(GuestVirtualAddress, length: Int)

    /// The address the failure is about.
    public var virtualAddress: GuestVirtualAddress {
        switch self {
        case .translationFailed(let error): return error.virtualAddress
        case .physicalOutsideMemory(let va, _, _), .lengthOutOfRange(let va, _, _), .rangeWrapsAround(let va, _): return va
        }
    }

    public var description: String {
        switch self {
        case .translationFailed(let error):
            return error.description
        case .physicalOutsideMemory(let va, let pa, let n):
            return "\(va) maps to [\(pa), +\(n)), which is outside guest RAM"
        case .lengthOutOfRange(let va, let n, let limit):
            return "read of \(n) bytes at \(va) is outside the allowed 0...\(limit)"
        case .rangeWrapsAround(let va, let n):
            return "read of \(n) bytes at \(va) runs past the top of the address space"
        }
    }
}
