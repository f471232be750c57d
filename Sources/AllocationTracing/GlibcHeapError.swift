/// Why glibc's heap metadata in a guest process could not be walked. The guest controls every
/// byte of it: each inconsistency is one of these, never a trap or an endless walk.
public enum GlibcHeapError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(address: UInt64)
    case misalignedChunk(address: UInt64)
    case chunkTooSmall(address: UInt64, size: UInt64)
    case misalignedSize(address: UInt64, size: UInt64)
    case chunkWraps(address: UInt64, size: UInt64)
    case chunkPastEnd(address: UInt64, size: UInt64, end: UInt64)
    case mmappedChunkInHeap(address: UInt64)
    case topNotInHeap(top: UInt64)
    case walkedPastTop(address: UInt64, top: UInt64)
    case tooManyChunks(limit: Int)
    case freeListLoops(list: String, address: UInt64)
    case freeListTooLong(list: String, limit: Int)
    case misalignedFreeChunk(list: String, address: UInt64)

    public var description: String {
        func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
        switch self {
        case .unreadable(let a): return "heap memory at \(hex(a)) is not readable"
        case .misalignedChunk(let a): return "chunk at \(hex(a)) is not 16-byte aligned"
        case .chunkTooSmall(let a, let s): return "chunk at \(hex(a)) has size \(hex(s)), below the 32-byte minimum"
        case .misalignedSize(let a, let s): return "chunk at \(hex(a)) has size \(hex(s)), not a multiple of 16"
        case .chunkWraps(let a, let s): return "chunk at \(hex(a)) of size \(hex(s)) wraps around the address space"
        case .chunkPastEnd(let a, let s, let e): return "chunk at \(hex(a)) of size \(hex(s)) runs past the heap's end \(hex(e))"
        case .mmappedChunkInHeap(let a): return "chunk at \(hex(a)) in the heap says it is mmapped"
        case .topNotInHeap(let t): return "the arena's top chunk \(hex(t)) is not in the heap"
        case .walkedPastTop(let a, let t): return "chunk at \(hex(a)) lies past the top chunk \(hex(t))"
        case .tooManyChunks(let limit): return "the heap has more than \(limit) chunks; walk stopped"
        case .freeListLoops(let list, let a): return "\(list) loops back to \(hex(a))"
        case .freeListTooLong(let list, let limit): return "\(list) is longer than \(limit) entries"
        case .misalignedFreeChunk(let list, let a): return "\(list) holds a misaligned entry \(hex(a))"
        }
    }
}
