import Introspection

/// One piece of memory a scan treats as roots, and why.
public struct RootRange: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A live thread's stack, from its stack pointer (less the 128-byte red zone) up; at exit,
        /// from `exit`'s entry stack pointer; in a heap block, up to the block's end.
        case stack(thread: Int32)
        /// A thread's static TLS block and thread control block, around its FS base.
        case threadLocal(thread: Int32)
        /// A writable mapping: data and bss of loaded objects, other anonymous memory.
        case writable(path: String)
        /// The part of an object's data made read-only after relocation (PT_GNU_RELRO).
        case relocationReadOnly(path: String)
    }

    public var range: Range<UInt64>
    public var kind: Kind

    public init(_ range: Range<UInt64>, _ kind: Kind) {
        self.range = range
        self.kind = kind
    }
}

/// The roots of one process: memory ranges plus the user registers of each thread.
public struct ProcessRootSet: Sendable {
    public var ranges: [RootRange] = []
    public var registerWords: [UInt64] = []
    /// Threads whose registers were found, and threads whose were not (with why).
    public var threads: [Int32] = []
    public var missingThreads: [MissingThread] = []
    /// Threads whose saved vector registers could not be read (their other roots were taken).
    public var threadsWithoutVectorRegisters: [Int32] = []
    /// Read-only data of the mapped files (read-only file mappings and RELRO), sorted and merged:
    /// where a vtable can be (the `multipleinheritance` heuristic).
    public var readOnlyData: [Range<UInt64>] = []
    /// Threads in `exit` whose stack was scanned only from `exit`'s entry stack pointer (by thread).
    public var exitEntries: [Int32: UInt64] = [:]

    public init() {}

    public var rootBytes: UInt64 { UInt64.saturatedSum(ranges.map(\.range.length)) }
}

/// A thread whose registers (and so its stack and TLS roots) could not be found.
public struct MissingThread: Sendable, CustomStringConvertible {
    public var pid: Int32
    public var error: IntrospectionError

    public init(pid: Int32, error: IntrospectionError) {
        self.pid = pid
        self.error = error
    }

    /// The note a scan report shows for it.
    public var description: String { "thread \(pid): \(error)" }
}
