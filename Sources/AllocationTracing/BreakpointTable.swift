import Foundation
import AllocationLedger
import GuestInterface
import GuestMemory
import X86

/// An `int3` the monitor wrote over the first byte of an allocator function in a page-cache page
/// (so every process mapping the file sees it), keyed to that page: the file's page cache
/// (`struct address_space`), the page's index in the file, and the frame it was in.
struct ArmedSite: Sendable, Codable {
    let site: AllocatorSite
    let physical: GuestPhysicalAddress
    let original: UInt8
    let guestPath: String
    /// The file's inode and page cache (`struct address_space *`) in the guest kernel.
    var inode: UInt64 = 0
    var mapping: UInt64 = 0
    /// File offset / 4096.
    var pageIndex: UInt64 { site.fileOffset >> 12 }
    /// The frame (physical page) holding the breakpoint.
    var frame: GuestPhysicalAddress { physical.alignedDown(to: 4096) }

    /// Where the breakpoint stands now, given the frame the page cache holds at `pageIndex` now
    /// (nil: the page is not cached) and the byte at `physical`.
    func state(cachedFrame: GuestPhysicalAddress?, byte: UInt8?) -> BreakpointState {
        guard let cachedFrame else { return .evicted }
        guard cachedFrame == frame else { return .moved(toFrame: cachedFrame) }
        return byte == 0xCC ? .inPlace : .overwritten
    }
}

/// Where an armed breakpoint stands after the guest may have changed its file's page cache.
enum BreakpointState: Equatable, Sendable, CustomStringConvertible {
    /// Still the file's page at that index, still our `int3`: the only case detach writes to.
    case inPlace
    /// The file's page at that index is another frame now (the file was rewritten, or the page was
    /// evicted and read again): the old frame may hold anything and is never written again.
    case moved(toFrame: GuestPhysicalAddress)
    /// The page is no longer cached (the old frame may hold anything).
    case evicted
    /// The same frame, but the guest wrote another byte over our `int3`.
    case overwritten

    var description: String {
        switch self {
        case .inPlace: return "in place"
        case .moved(let frame): return "the file's page moved to frame \(hex(frame.rawValue))"
        case .evicted: return "the file's page is no longer cached"
        case .overwritten: return "the guest overwrote the int3"
        }
    }
}

/// A kernel function whose ftrace `nopl` the monitor replaced with `out 0xEB, al`.
struct KernelHook: Sendable, Codable {
    enum Kind: String, Sendable, Codable { case mmapRegion = "mmap_region", exitMmap = "exit_mmap", doExit = "do_exit" }
    let kind: Kind
    let address: GuestVirtualAddress
    let physical: GuestPhysicalAddress
    let original: [UInt8]
}

/// An allocator entry whose `int3` is the exitless path's jumps instead: byte runs in one
/// page-cache page (the entry's `jmp rel8`, hops, the padding `call`, the push), with their originals.
struct ExitlessArmedSite: Sendable {
    let site: AllocatorSite
    let guestPath: String
    let inode: UInt64
    let mapping: UInt64
    /// The page-cache frame holding every run.
    let frame: GuestPhysicalAddress
    let patches: ExitlessPath.Patches
    var pageIndex: UInt64 { site.fileOffset >> 12 }

    /// Each run: where it is, what the monitor wrote, what was there. The entry first (the order
    /// of taking them away; writing goes the other way).
    var runs: [(physical: GuestPhysicalAddress, written: [UInt8], original: [UInt8])] {
        patches.runs.map { (frame.offset(Int($0.offset & 0xFFF)), $0.written, $0.original) }
    }

    /// Writes `bytes` (the entry's run, as written or as original: 2 bytes, or 5 for a `call` at
    /// the entry) over the entry in one store (2 bytes, or the aligned 8-byte word the 5 lie in):
    /// a thread running the entry sees the old or the new instructions, never part of each.
    func storeEntry(_ bytes: [UInt8], memory: GuestMemory) throws(GuestMemoryError) {
        let at = runs[0].physical
        if bytes.count == 2 {
            try memory.store(UInt16(bytes[0]) | UInt16(bytes[1]) << 8, at: at)
            return
        }
        let word = GuestPhysicalAddress(at.rawValue & ~7), shift = Int(at.rawValue & 7)
        guard shift + bytes.count <= 8 else { throw .invalidLayout("an exitless entry run of \(bytes.count) bytes crosses a word") }
        var value = try memory.load(UInt64.self, at: word)
        for (k, byte) in bytes.enumerated() {
            value = value & ~(UInt64(0xFF) << (8 * (shift + k))) | UInt64(byte) << (8 * (shift + k))
        }
        try memory.store(value, at: word)
    }

    /// Where it stands, as `ArmedSite.state`: the frame the page cache holds now, and whether every
    /// run still holds what the monitor wrote.
    func state(cachedFrame: GuestPhysicalAddress?, memory: GuestMemory) -> BreakpointState {
        guard let cachedFrame else { return .evicted }
        guard cachedFrame == frame else { return .moved(toFrame: cachedFrame) }
        return runs.allSatisfy({ (try? memory.read(at: $0.physical, count: $0.written.count)) == $0.written }) ? .inPlace : .overwritten
    }
}

/// How far arming a file got.
enum FileArming: Sendable, Codable {
    /// No allocator functions, or no host copy to find them in.
    case nothingToArm
    case armed(sites: Int)
    /// Some sites were not in the page cache yet; retried when the file is mapped again.
    case partial(path: String, missing: [AllocatorSite])
}

/// Every byte the monitor changed in the guest, with the original, so detaching restores all.
struct BreakpointTable: Sendable {
    /// Allocator breakpoints by the guest-physical address of their `int3` (in a page-cache page).
    var sites: [GuestPhysicalAddress: ArmedSite] = [:]
    /// Kernel hooks by the kernel virtual address of the function they hook.
    var hooks: [GuestVirtualAddress: KernelHook] = [:]
    /// How far arming got, per file (by the guest kernel's `struct inode` address).
    var files: [UInt64: FileArming] = [:]
    /// Each page the monitor wrote into (by its frame), as it was before the first write (checked at detach).
    var pagesBefore: [GuestPhysicalAddress: [UInt8]] = [:]
    /// Exitless entries by the guest-physical address of their first byte. Not saved: a snapshot
    /// of a guest tracked with the exitless path is refused.
    var exitless: [GuestPhysicalAddress: ExitlessArmedSite] = [:]

    /// Drops a breakpoint the guest's page cache no longer holds, and the page copy kept for it
    /// when no other breakpoint or hook is in that frame.
    mutating func forget(_ armed: ArmedSite) {
        sites[armed.physical] = nil
        forgetPage(armed.frame)
    }

    /// Drops an exitless entry the guest's page cache no longer holds (as `forget`).
    mutating func forget(_ armed: ExitlessArmedSite) {
        exitless[armed.runs[0].physical] = nil
        forgetPage(armed.frame)
    }

    /// Drops the copy of `frame` once nothing of the monitor's is left in it.
    private mutating func forgetPage(_ frame: GuestPhysicalAddress) {
        if !sites.values.contains(where: { $0.frame == frame }), !exitless.values.contains(where: { $0.frame == frame }),
           !hooks.values.contains(where: { $0.physical.alignedDown(to: 4096) == frame }) {
            pagesBefore[frame] = nil
        }
    }
}

extension BreakpointTable: Codable {
    private enum CodingKeys: String, CodingKey { case sites, hooks, files, pagesBefore }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sites = try c.decode([GuestPhysicalAddress: ArmedSite].self, forKey: .sites)
        hooks = try c.decode([GuestVirtualAddress: KernelHook].self, forKey: .hooks)
        files = try c.decode([UInt64: FileArming].self, forKey: .files)
        pagesBefore = try c.decode([GuestPhysicalAddress: Data].self, forKey: .pagesBefore).mapValues { [UInt8]($0) }
        // Each breakpoint is keyed by where its `int3` is; a page copy is one page.
        guard sites.allSatisfy({ $0.key == $0.value.physical }), pagesBefore.values.allSatisfy({ $0.count == 4096 }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "inconsistent breakpoint table"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sites, forKey: .sites)
        try c.encode(hooks, forKey: .hooks)
        try c.encode(files, forKey: .files)
        try c.encode(pagesBefore.mapValues { Data($0) }, forKey: .pagesBefore)
    }
}
