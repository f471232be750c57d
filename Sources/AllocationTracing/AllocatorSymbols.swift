import AllocationLedger

/// An allocator entry point as a symbol names it: what it does and where its arguments are.
public struct AllocatorEntryPoint: Sendable, Equatable, Codable {
    public var function: AllocatorFunction
    public var convention: AllocatorConvention

    public init(function: AllocatorFunction, convention: AllocatorConvention) {
        self.function = function
        self.convention = convention
    }
}

/// The ELF symbol names of the glibc malloc family and libstdc++'s `operator new`/`delete`
/// (x86-64 mangling, `size_t` = `m`), with their entry points.
public enum AllocatorSymbols {
    /// The entry point a symbol name stands for, or nil for any other name.
    public static func entryPoint(named name: String) -> AllocatorEntryPoint? {
        byName[name]?.entryPoint
    }

    /// Every catalogued name, in order of preference when several name one address (public names
    /// before `__libc_` aliases and `cfree`; `memalign` before `aligned_alloc`).
    public static let names: [String] = catalog.map(\.name)

    /// The rank of `name` in `names` (lower is preferred), or nil if it is not catalogued.
    public static func preference(of name: String) -> Int? { byName[name]?.rank }

    private static let byName: [String: (rank: Int, entryPoint: AllocatorEntryPoint)] = Dictionary(
        uniqueKeysWithValues: catalog.enumerated().map { ($0.element.name, ($0.offset, $0.element.entryPoint)) })

    private static let catalog: [(name: String, entryPoint: AllocatorEntryPoint)] = {
        typealias C = AllocatorConvention
        func entry(_ name: String, _ function: AllocatorFunction, _ convention: C) -> (String, AllocatorEntryPoint) {
            (name, AllocatorEntryPoint(function: function, convention: convention))
        }
        let malloc = C(size: .register(.rdi), result: .returnRegister)
        let calloc = C(size: .product(count: .rdi, size: .rsi), result: .returnRegister)
        let realloc = C(size: .register(.rsi), oldPointer: .rdi, result: .returnRegister)
        let reallocarray = C(size: .product(count: .rsi, size: .rdx), oldPointer: .rdi, result: .returnRegister)
        let free = C(oldPointer: .rdi)
        let posixMemalign = C(size: .register(.rdx), alignment: .rsi, result: .storedThrough(.rdi))
        let memalign = C(size: .register(.rsi), alignment: .rdi, result: .returnRegister)
        var entries = [
            entry("malloc", .malloc, malloc),
            entry("calloc", .calloc, calloc),
            entry("realloc", .realloc, realloc),
            entry("reallocarray", .reallocarray, reallocarray),
            entry("free", .free, free),
            entry("posix_memalign", .posixMemalign, posixMemalign),
            entry("memalign", .memalign, memalign),
            entry("aligned_alloc", .memalign, memalign),
            entry("valloc", .valloc, malloc),
            entry("pvalloc", .pvalloc, malloc),
            entry("cfree", .free, free),
            entry("__libc_malloc", .malloc, malloc),
            entry("__libc_calloc", .calloc, calloc),
            entry("__libc_realloc", .realloc, realloc),
            entry("__libc_reallocarray", .reallocarray, reallocarray),
            entry("__libc_free", .free, free),
            entry("__libc_memalign", .memalign, memalign),
            entry("__libc_valloc", .valloc, malloc),
            entry("__libc_pvalloc", .pvalloc, malloc),
        ]
        // operator new(size_t [, std::align_val_t] [, const std::nothrow_t&]).
        for (prefix, function) in [("_Znw", AllocatorFunction.operatorNew), ("_Zna", .operatorNewArray)] {
            entries += [
                entry(prefix + "m", function, C(size: .register(.rdi), result: .returnRegister)),
                entry(prefix + "mRKSt9nothrow_t", function, C(size: .register(.rdi), result: .returnRegister, nothrow: true)),
                entry(prefix + "mSt11align_val_t", function, C(size: .register(.rdi), alignment: .rsi, result: .returnRegister)),
                entry(
                    prefix + "mSt11align_val_tRKSt9nothrow_t", function,
                    C(size: .register(.rdi), alignment: .rsi, result: .returnRegister, nothrow: true)),
            ]
        }
        // operator delete(void* [, size_t] [, std::align_val_t] [, const std::nothrow_t&]).
        for (prefix, function) in [("_Zdl", AllocatorFunction.operatorDelete), ("_Zda", .operatorDeleteArray)] {
            entries += [
                entry(prefix + "Pv", function, C(oldPointer: .rdi)),
                entry(prefix + "Pvm", function, C(size: .register(.rsi), oldPointer: .rdi)),
                entry(prefix + "PvRKSt9nothrow_t", function, C(oldPointer: .rdi, nothrow: true)),
                entry(prefix + "PvSt11align_val_t", function, C(oldPointer: .rdi, alignment: .rsi)),
                entry(prefix + "PvmSt11align_val_t", function, C(size: .register(.rsi), oldPointer: .rdi, alignment: .rdx)),
                entry(prefix + "PvSt11align_val_tRKSt9nothrow_t", function, C(oldPointer: .rdi, alignment: .rsi, nothrow: true)),
            ]
        }
        return entries.map { (name: $0.0, entryPoint: $0.1) }
    }()
}
