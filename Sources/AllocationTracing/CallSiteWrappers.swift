import AllocationLedger
import Foundation

/// Allocator entry points the exitless path leaves unarmed because all they do is call another
/// tracked one: libstdc++'s `operator new(size_t)` calls `malloc` (and throws when it fails, which
/// it could not do through a stub). An allocation whose caller lies in one is recorded as that
/// wrapper's, at its entry, with the wrapper's frame dropped: what trapping it would have
/// recorded, without its two traps (`docs/exitless-tracking.md`). Bookkeeping by host file.
struct CallSiteWrappers: Sendable {
    struct Wrapper: Sendable, Equatable {
        /// File offsets of the wrapper's code, and its entry.
        let range: Range<UInt64>
        let entry: UInt64
        let function: AllocatorFunction
    }

    private(set) var byFile: [String: [Wrapper]] = [:]

    /// The wrapper whose code holds `offset` of host file `hostPath`.
    func wrapper(in hostPath: String, at offset: UInt64) -> Wrapper? {
        byFile[hostPath]?.first { $0.range.contains(offset) }
    }

    mutating func add(_ wrapper: Wrapper, hostPath: String) {
        if byFile[hostPath]?.contains(wrapper) != true { byFile[hostPath, default: []].append(wrapper) }
    }

    /// Which of a file's `sites` are wrappers: `operator new(size_t)` in libstdc++ itself, or in
    /// an executable that links it statically when its code calls that file's `malloc` directly
    /// (a `call rel32` to it). Another allocator's `operator new` (tcmalloc's, jemalloc's) does
    /// not call `malloc` and stays armed.
    static func wrappers(in sites: [AllocatorSite], hostPath: String) -> [Wrapper] {
        let libstdcxx = isLibstdcxx(hostPath)
        let malloc = sites.first { $0.entryPoint.function == .malloc }
        return sites.compactMap { site -> Wrapper? in
            guard site.symbol == scalarNew, let size = site.size, size > 0, size <= 4096 else { return nil }
            let wrapper = Wrapper(range: site.fileOffset..<(site.fileOffset + size), entry: site.fileOffset, function: .operatorNew)
            if libstdcxx { return wrapper }
            guard let malloc, let bytes = read(hostPath, site.fileOffset, Int(size)) else { return nil }
            return calls(bytes, at: site.fileOffset, target: malloc.fileOffset) ? wrapper : nil
        }
    }

    /// `operator new(size_t)`'s symbol.
    static let scalarNew = "_Znwm"

    static func isLibstdcxx(_ hostPath: String) -> Bool {
        URL(fileURLWithPath: hostPath).lastPathComponent.hasPrefix("libstdc++.so")
    }

    /// Whether `code` (at file offset `start`) holds a `call rel32` to file offset `target`.
    static func calls(_ code: [UInt8], at start: UInt64, target: UInt64) -> Bool {
        code.indices.contains { code[$0] == 0xE8 && ExitlessPlanner.directBranchTarget(code, at: $0, base: start) == Int64(target) }
    }

    private static func read(_ path: String, _ offset: UInt64, _ count: Int) -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.read(upToCount: count), data.count == count else { return nil }
        return [UInt8](data)
    }
}
