/// An allocator function in an ELF file whose first instruction the monitor can execute, so an
/// `int3` over its first byte can be armed.
public struct AllocatorSite: Sendable, Equatable, Codable {
    /// The preferred catalogued name at this address (see `AllocatorSymbols.names`).
    public var symbol: String
    /// The other catalogued names at the same address, in order of preference.
    public var aliases: [String]
    public var entryPoint: AllocatorEntryPoint
    /// The link-time virtual address (`st_value`); add the load bias for the runtime address.
    public var address: UInt64
    /// Where the first byte is in the file: `address − p_vaddr + p_offset` of its `PT_LOAD` segment.
    public var fileOffset: UInt64
    /// The first instruction, which the `int3` displaces.
    public var instruction: PrologueInstruction
    /// The symbol's size (`st_size`), when known.
    public var size: UInt64? = nil

    /// True when names of another family share this address (tcmalloc's and mimalloc's `free`
    /// is also `operator delete` and `delete[]`, their `operator new` also `new[]`): which one the
    /// program called cannot be told, so a release here is never a mismatched deallocation.
    public var aliasesOtherFamilies: Bool {
        aliases.contains { AllocatorSymbols.entryPoint(named: $0).map { $0.function.family != entryPoint.function.family } ?? false }
    }

    public init(
        symbol: String, aliases: [String], entryPoint: AllocatorEntryPoint, address: UInt64, fileOffset: UInt64,
        instruction: PrologueInstruction, size: UInt64? = nil
    ) {
        self.size = size
        self.symbol = symbol
        self.aliases = aliases
        self.entryPoint = entryPoint
        self.address = address
        self.fileOffset = fileOffset
        self.instruction = instruction
    }
}

/// An allocator function that must not be armed, and why.
public struct UnarmableAllocatorSite: Sendable, Equatable {
    /// Why a site cannot be armed.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// The first instruction is not one `PrologueInstruction` decodes (the bytes read, up to 15).
        case unsupportedInstruction([UInt8])
        /// The symbol is an `STT_GNU_IFUNC`: its address is a resolver, not the allocator.
        case indirectFunction
        /// No `PT_LOAD` segment holds the address in its file contents.
        case outsideLoadSegments
        /// The `PT_LOAD` segment holding the address is not executable.
        case notExecutable

        public var description: String {
            switch self {
            case .unsupportedInstruction(let bytes):
                "first instruction not supported: " + bytes.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
            case .indirectFunction: "GNU indirect function (the symbol is its resolver)"
            case .outsideLoadSegments: "address not in any PT_LOAD segment's file contents"
            case .notExecutable: "address in a non-executable segment"
            }
        }
    }

    public var symbol: String
    public var aliases: [String]
    public var entryPoint: AllocatorEntryPoint
    public var address: UInt64
    /// The file offset, when a `PT_LOAD` segment holds the address.
    public var fileOffset: UInt64?
    public var reason: Reason

    public init(
        symbol: String, aliases: [String], entryPoint: AllocatorEntryPoint, address: UInt64, fileOffset: UInt64?,
        reason: Reason
    ) {
        self.symbol = symbol
        self.aliases = aliases
        self.entryPoint = entryPoint
        self.address = address
        self.fileOffset = fileOffset
        self.reason = reason
    }
}

/// The allocator functions one ELF file defines, split by whether they can be armed; each list
/// is sorted by address.
public struct AllocatorSites: Sendable, Equatable {
    public var armable: [AllocatorSite]
    public var unarmable: [UnarmableAllocatorSite]

    public init(armable: [AllocatorSite], unarmable: [UnarmableAllocatorSite]) {
        self.armable = armable
        self.unarmable = unarmable
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
