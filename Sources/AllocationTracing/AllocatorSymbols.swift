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

/// The ELF symbol names of the malloc family and C++ `operator new`/`delete` (x86-64 mangling,
/// `size_t` = `m`) as glibc, libstdc++, jemalloc, tcmalloc (gperftools) and mimalloc export them,
/// with their entry points: the standard names (which jemalloc, tcmalloc and mimalloc also
/// define, to replace glibc's), then each allocator's own API (`mallocx`/`sdallocx` and the `je_`
/// prefix of a prefixed jemalloc build, `tc_`, `mi_`). Not catalogued: queries
/// (`malloc_usable_size`, `nallocx`, `sallocx`), in-place resizes (`xallocx`, `mi_expand`),
/// mimalloc's per-heap API (`mi_heap_*`) and its string duplicators (`mi_strdup`, `mi_realpath`).
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
        typealias S = StandardConvention
        let (malloc, calloc, realloc, reallocarray, free) = (S.malloc, S.calloc, S.realloc, S.reallocarray, S.free)
        let (posixMemalign, memalign) = (S.posixMemalign, S.memalign)
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
        entries += vendorEntries()
        return entries.map { (name: $0.0, entryPoint: $0.1) }
    }()

    /// jemalloc's, tcmalloc's and mimalloc's own names, after the standard ones (so a standard name
    /// at the same address is the one a site is known by).
    private static func vendorEntries() -> [(String, AllocatorEntryPoint)] {
        typealias C = AllocatorConvention
        typealias S = StandardConvention
        let (malloc, calloc, realloc, reallocarray, free) = (S.malloc, S.calloc, S.realloc, S.reallocarray, S.free)
        let (posixMemalign, memalign) = (S.posixMemalign, S.memalign)
        // (size, alignment): mimalloc's `_aligned` variants and the aligned `new`.
        let sizeThenAlignment = C(size: .register(.rdi), alignment: .rsi, result: .returnRegister)
        var entries: [(String, AllocatorEntryPoint)] = []
        // jemalloc: mallocx(size, flags), rallocx(ptr, size, flags), dallocx(ptr, flags), sdallocx(ptr, size, flags);
        // a build configured with --with-jemalloc-prefix=je_ (redis's own copy) names everything je_.
        let jemalloc: [(String, AllocatorFunction, C)] = [
            ("mallocx", .malloc, malloc), ("rallocx", .realloc, realloc), ("dallocx", .free, free), ("sdallocx", .free, free),
        ]
        entries += jemalloc.map { entry($0.0, $0.1, $0.2) }
        let jePrefixed: [(String, AllocatorFunction, C)] = [
            ("malloc", .malloc, malloc), ("calloc", .calloc, calloc), ("realloc", .realloc, realloc), ("free", .free, free),
            ("posix_memalign", .posixMemalign, posixMemalign), ("memalign", .memalign, memalign),
            ("aligned_alloc", .memalign, memalign), ("valloc", .valloc, malloc),
        ] + jemalloc
        entries += jePrefixed.map { entry("je_" + $0.0, $0.1, $0.2) }
        // tcmalloc (gperftools): tc_ names, most of them aliases of the standard ones.
        entries += [
            entry("tc_malloc", .malloc, malloc), entry("tc_calloc", .calloc, calloc), entry("tc_realloc", .realloc, realloc),
            entry("tc_free", .free, free), entry("tc_cfree", .free, free), entry("tc_free_sized", .free, free),
            entry("tc_memalign", .memalign, memalign), entry("tc_posix_memalign", .posixMemalign, posixMemalign),
            entry("tc_valloc", .valloc, malloc), entry("tc_pvalloc", .pvalloc, malloc),
        ]
        for (name, function) in [("tc_new", AllocatorFunction.operatorNew), ("tc_newarray", .operatorNewArray)] {
            entries += [
                entry(name, function, malloc),
                entry(name + "_nothrow", function, C(size: .register(.rdi), result: .returnRegister, nothrow: true)),
                entry(name + "_aligned", function, sizeThenAlignment),
                entry(name + "_aligned_nothrow", function, C(size: .register(.rdi), alignment: .rsi, result: .returnRegister, nothrow: true)),
            ]
        }
        for (name, function) in [("tc_delete", AllocatorFunction.operatorDelete), ("tc_deletearray", .operatorDeleteArray)] {
            entries += [
                entry(name, function, free), entry(name + "_nothrow", function, C(oldPointer: .rdi, nothrow: true)),
                entry(name + "_sized", function, C(size: .register(.rsi), oldPointer: .rdi)),
                entry(name + "_aligned", function, C(oldPointer: .rdi, alignment: .rsi)),
                entry(name + "_sized_aligned", function, C(size: .register(.rsi), oldPointer: .rdi, alignment: .rdx)),
                entry(name + "_aligned_nothrow", function, C(oldPointer: .rdi, alignment: .rsi, nothrow: true)),
            ]
        }
        // mimalloc: mi_ names (the standard ones are aliases of mi_malloc, mi_free, ...).
        entries += [
            entry("mi_malloc", .malloc, malloc), entry("mi_zalloc", .malloc, malloc), entry("mi_malloc_small", .malloc, malloc),
            entry("mi_zalloc_small", .malloc, malloc),
            entry("mi_calloc", .calloc, calloc), entry("mi_mallocn", .malloc, calloc),
            entry("mi_realloc", .realloc, realloc), entry("mi_reallocf", .realloc, realloc), entry("mi_rezalloc", .realloc, realloc),
            entry("mi_reallocn", .reallocarray, reallocarray), entry("mi_reallocarray", .reallocarray, reallocarray),
            entry("mi_recalloc", .reallocarray, reallocarray),
            entry("mi_free", .free, free), entry("mi_cfree", .free, free), entry("mi_free_size", .free, free),
            entry("mi_free_aligned", .free, free), entry("mi_free_size_aligned", .free, free),
            entry("mi_malloc_aligned", .memalign, sizeThenAlignment), entry("mi_zalloc_aligned", .memalign, sizeThenAlignment),
            entry("mi_calloc_aligned", .calloc, C(size: .product(count: .rdi, size: .rsi), alignment: .rdx, result: .returnRegister)),
            entry("mi_realloc_aligned", .realloc, C(size: .register(.rsi), oldPointer: .rdi, alignment: .rdx, result: .returnRegister)),
            entry("mi_posix_memalign", .posixMemalign, posixMemalign), entry("mi_memalign", .memalign, memalign),
            entry("mi_aligned_alloc", .memalign, memalign), entry("mi_valloc", .valloc, malloc), entry("mi_pvalloc", .pvalloc, malloc),
            entry("mi_new", .operatorNew, malloc), entry("mi_new_nothrow", .operatorNew, C(size: .register(.rdi), result: .returnRegister, nothrow: true)),
            entry("mi_new_aligned", .operatorNew, sizeThenAlignment),
            entry("mi_new_aligned_nothrow", .operatorNew, C(size: .register(.rdi), alignment: .rsi, result: .returnRegister, nothrow: true)),
            entry("mi_new_n", .operatorNewArray, calloc),
        ]
        return entries
    }
}

/// The argument conventions of the standard names (System V AMD64), which jemalloc, tcmalloc and
/// mimalloc keep for their own variants.
private enum StandardConvention {
    typealias C = AllocatorConvention
    static let malloc = C(size: .register(.rdi), result: .returnRegister)
    static let calloc = C(size: .product(count: .rdi, size: .rsi), result: .returnRegister)
    static let realloc = C(size: .register(.rsi), oldPointer: .rdi, result: .returnRegister)
    static let reallocarray = C(size: .product(count: .rsi, size: .rdx), oldPointer: .rdi, result: .returnRegister)
    static let free = C(oldPointer: .rdi)
    static let posixMemalign = C(size: .register(.rdx), alignment: .rsi, result: .storedThrough(.rdi))
    static let memalign = C(size: .register(.rsi), alignment: .rdi, result: .returnRegister)
}

/// A catalogue entry: a name and what it stands for.
private func entry(_ name: String, _ function: AllocatorFunction, _ convention: AllocatorConvention) -> (String, AllocatorEntryPoint) {
    (name, AllocatorEntryPoint(function: function, convention: convention))
}
