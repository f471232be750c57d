/// A guest allocator entry point, by what it does (aliases such as `aligned_alloc`/`memalign`,
/// `malloc`/`__libc_malloc` share one address and one case).
public enum AllocatorFunction: String, Sendable, Codable, CaseIterable {
    case malloc, calloc, realloc, reallocarray, free
    case posixMemalign = "posix_memalign"
    case memalign                         // also aligned_alloc (one address in glibc)
    case valloc, pvalloc
    case operatorNew = "operator new"
    case operatorNewArray = "operator new[]"
    case operatorDelete = "operator delete"
    case operatorDeleteArray = "operator delete[]"
    /// A block malloc had handed out before `leakvisor attach` (found in glibc's heap metadata:
    /// exact size, no stack). Last, so that the cases before keep their index in `LiveBlock`.
    case beforeAttach = "allocated before attach"

    /// True for entry points that release a block and return nothing the ledger needs.
    public var releases: Bool {
        switch self {
        case .free, .operatorDelete, .operatorDeleteArray: return true
        default: return false
        }
    }

    /// The family a block belongs to, for mismatched-deallocation findings.
    public var family: AllocatorFamily {
        switch self {
        case .operatorNew, .operatorDelete: return .scalarNew
        case .operatorNewArray, .operatorDeleteArray: return .arrayNew
        default: return .malloc
        }
    }
}

/// Which deallocator matches a block: `free` for the malloc family, `delete` for `new`,
/// `delete[]` for `new[]`.
public enum AllocatorFamily: String, Sendable, Codable {
    case malloc, scalarNew = "new", arrayNew = "new[]"
}
