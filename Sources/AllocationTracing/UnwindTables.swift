import DebugInfo
import Foundation
import Introspection
import Synchronization
import X86

/// The `CallFrameTable` of each host file, built the first time a stack walk needs a rule in it
/// and kept for every process that maps the file (libc's takes a few hundred kilobytes), and per
/// address space the executable file mappings a stack walk looks rules up in.
final class UnwindTables: Sendable {
    /// One executable file mapping of an address space and its file's host copy (nil: none).
    struct Module: Sendable {
        var range: Range<UInt64>
        var fileOffset: UInt64
        var hostPath: String?
    }

    /// Tables built since the last `takeBuilt` and the nanoseconds that took.
    struct Built: Sendable {
        var tables = 0
        var nanoseconds: UInt64 = 0
    }

    let files: GuestSymbolFiles
    private let byHostFile = Mutex([String: CallFrameTable]())
    private let bySpace = Mutex([PageTableRoot: [Module]]())
    private let built = Mutex(Built())

    init(files: GuestSymbolFiles) {
        self.files = files
    }

    /// Whether the executable mappings of `root` are known.
    func knows(_ root: PageTableRoot) -> Bool { bySpace.withLock { $0[root] != nil } }

    /// Records the executable file mappings of `root` and where their host copies are.
    func update(_ root: PageTableRoot, mappings: [GuestMapping]) {
        var modules: [Module] = []
        for m in mappings where m.path.hasPrefix("/") && m.permissions.contains("x") && m.start < m.end {
            modules.append(Module(range: m.start..<m.end, fileOffset: m.fileOffset, hostPath: files.hostPath(forGuest: m.path)))
        }
        modules.sort { $0.range.lowerBound < $1.range.lowerBound }
        bySpace.withLock { $0[root] = modules }
    }

    /// The rule for a code address of `root`, from the table of the file mapped there.
    func rules(of root: PageTableRoot) -> (UInt64) -> CallFrameRule? {
        let modules = bySpace.withLock { $0[root] } ?? []
        return { pc in
            let low = partitionPoint(count: modules.count) { modules[$0].range.lowerBound <= pc }
            guard low > 0 else { return nil }
            let m = modules[low - 1]
            guard m.range.contains(pc), let host = m.hostPath else { return nil }
            return self.table(host).rule(atFileOffset: pc - m.range.lowerBound &+ m.fileOffset)
        }
    }

    /// The host file and file offset of a code address of `root`, if a known mapping holds it.
    func location(of pc: UInt64, in root: PageTableRoot) -> (hostPath: String, fileOffset: UInt64)? {
        let modules = bySpace.withLock { $0[root] } ?? []
        let low = partitionPoint(count: modules.count) { modules[$0].range.lowerBound <= pc }
        guard low > 0 else { return nil }
        let m = modules[low - 1]
        guard m.range.contains(pc), let host = m.hostPath else { return nil }
        return (host, pc - m.range.lowerBound &+ m.fileOffset)
    }

    /// The table of a host file, built on first use (empty when the file cannot be read).
    func table(_ hostPath: String) -> CallFrameTable {
        if let known = byHostFile.withLock({ $0[hostPath] }) { return known }
        let started = DispatchTime.now().uptimeNanoseconds
        let made = (try? ELFFile(path: hostPath)).map { CallFrameTable(file: $0) } ?? CallFrameTable(rows: [])
        let elapsed = DispatchTime.now().uptimeNanoseconds &- started
        byHostFile.withLock { $0[hostPath] = made }
        built.withLock { $0.tables += 1; $0.nanoseconds &+= elapsed }
        return made
    }

    /// The tables built since the last call, and the time that took.
    func takeBuilt() -> Built {
        built.withLock { b in defer { b = Built() }; return b }
    }

    /// Forgets an address space torn down.
    func forget(_ root: PageTableRoot) {
        bySpace.withLock { _ = $0.removeValue(forKey: root) }
    }
}
