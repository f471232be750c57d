import AllocationTracking

/// An `int3` the monitor wrote over the first byte of an allocator function in a page-cache page
/// (so every process mapping the file sees it).
struct ArmedSite: Sendable {
    let site: AllocatorSite
    let physical: UInt64
    let original: UInt8
    let guestPath: String
}

/// A kernel function whose ftrace `nopl` the monitor replaced with `out 0xEB, al`.
struct KernelHook: Sendable {
    enum Kind: String, Sendable { case mmapRegion = "mmap_region", exitMmap = "exit_mmap" }
    let kind: Kind
    let address: UInt64
    let physical: UInt64
    let original: [UInt8]
}

/// How far arming a file got.
enum FileArming: Sendable {
    /// No allocator functions, or no host copy to find them in.
    case nothingToArm
    case armed(sites: Int)
    /// Some sites were not in the page cache yet; retried when the file is mapped again.
    case partial(path: String, missing: [AllocatorSite])
}

/// Every byte the monitor changed in the guest, with the original, so detaching restores all.
struct BreakpointTable: Sendable {
    var sites: [UInt64: ArmedSite] = [:]
    var hooks: [UInt64: KernelHook] = [:]
    var files: [UInt64: FileArming] = [:]
    var diagnostics: [String] = []
    /// Each page the monitor wrote into, as it was before the first write (checked at detach).
    var pagesBefore: [UInt64: [UInt8]] = [:]

    mutating func note(_ text: String) {
        if diagnostics.count < 200 { diagnostics.append(text) }
    }
}
