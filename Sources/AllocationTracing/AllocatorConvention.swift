import AllocationLedger
import Introspection
import X86

/// Where an allocator entry point finds its arguments and leaves its result, as registers at
/// entry (System V AMD64 ABI: rdi, rsi, rdx, … in order; result in rax).
public struct AllocatorConvention: Sendable, Equatable, Codable {
    /// The size requested; for sized `operator delete`, the size the caller declares.
    public var size: SizeArgument
    /// The block released or resized (`free`, `realloc`, `reallocarray`, `operator delete`).
    public var oldPointer: GeneralRegisterName?
    /// The requested alignment (`memalign`, `aligned_alloc`, `posix_memalign`, `std::align_val_t`).
    public var alignment: GeneralRegisterName?
    /// Where the new block appears when the function returns.
    public var result: AllocationResult
    /// A `const std::nothrow_t&` variant: `operator new` returns null instead of throwing.
    public var nothrow: Bool

    public init(
        size: SizeArgument = .none, oldPointer: GeneralRegisterName? = nil, alignment: GeneralRegisterName? = nil,
        result: AllocationResult = .none, nothrow: Bool = false
    ) {
        self.size = size
        self.oldPointer = oldPointer
        self.alignment = alignment
        self.result = result
        self.nothrow = nothrow
    }
}

/// Which argument registers give a size in bytes.
public enum SizeArgument: Sendable, Equatable, Codable {
    /// No size argument (`free`, unsized `operator delete`).
    case none
    /// One register holds the size.
    case register(GeneralRegisterName)
    /// `count × size` (`calloc`, `reallocarray`).
    case product(count: GeneralRegisterName, size: GeneralRegisterName)

    /// The size in bytes with `registers` at entry; nil without a size argument or when the
    /// product overflows 64 bits (the allocator then fails with `ENOMEM`).
    public func bytes(in registers: GeneralRegisters) -> UInt64? {
        switch self {
        case .none: return nil
        case .register(let register): return register.value(in: registers)
        case .product(let count, let size):
            let (bytes, overflow) = count.value(in: registers).multipliedReportingOverflow(by: size.value(in: registers))
            return overflow ? nil : bytes
        }
    }
}

/// Where an allocator leaves the new block.
public enum AllocationResult: Sendable, Equatable, Codable {
    /// Returns nothing the ledger needs (`free`, `operator delete`).
    case none
    /// rax holds the new block, or 0 on failure.
    case returnRegister
    /// The block is stored at the address this argument held at entry, and only on success,
    /// which rax == 0 signals (`posix_memalign(memptr = rdi, …)`).
    case storedThrough(GeneralRegisterName)
}
