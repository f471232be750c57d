import DebugInfo
import Foundation
import Introspection
import Synchronization
import X86

/// The `CallFrameTable` of each host file, built on first use and kept for every process that maps
/// the file (libc's takes a few hundred kilobytes), and per address space the executable file
/// mappings a stack walk looks rules up in.
final class UnwindTables: Sendable {
    /// One executable file mapping of an address space, with its file's table (nil: no host copy).
    struct Module: Sendable {
        var range: Range<UInt64>
        var fileOffset: UInt64
        var table: CallFrameTable?
    }

    let files: GuestSymbolFiles
    private let byHostFile = Mutex([String: CallFrameTable]())
    private let bySpace = Mutex([PageTableRoot: [Module]]())

    init(files: GuestSymbolFiles) {
        self.files = files
    }

    /// Whether the executable mappings of `root` are known.
    func knows(_ root: PageTableRoot) -> Bool { bySpace.withLock { $0[root] != nil } }

    /// Records the executable file mappings of `root` (building the tables not built yet) and
    /// returns how many tables were built and the nanoseconds that took.
    @discardableResult
    func update(_ root: PageTableRoot, mappings: [GuestMapping]) -> (built: Int, nanoseconds: UInt64) {
        var modules: [Module] = []
        var built = 0
        let started = DispatchTime.now().uptimeNanoseconds
        for m in mappings where m.path.hasPrefix("/") && m.permissions.contains("x") && m.start < m.end {
            var table: CallFrameTable?
            if let host = files.hostPath(forGuest: m.path) {
                if let known = byHostFile.withLock({ $0[host] }) {
                    table = known
                } else if let file = try? ELFFile(path: host) {
                    let made = CallFrameTable(file: file)
                    byHostFile.withLock { $0[host] = made }
                    table = made
                    built += 1
                }
            }
            modules.append(Module(range: m.start..<m.end, fileOffset: m.fileOffset, table: table))
        }
        modules.sort { $0.range.lowerBound < $1.range.lowerBound }
        bySpace.withLock { $0[root] = modules }
        return (built, built > 0 ? DispatchTime.now().uptimeNanoseconds &- started : 0)
    }

    /// The rule for a code address of `root`, from the table of the file mapped there.
    func rules(of root: PageTableRoot) -> @Sendable (UInt64) -> CallFrameRule? {
        let modules = bySpace.withLock { $0[root] } ?? []
        return { pc in
            var low = 0, high = modules.count
            while low < high {
                let mid = (low + high) / 2
                if modules[mid].range.lowerBound <= pc { low = mid + 1 } else { high = mid }
            }
            guard low > 0 else { return nil }
            let m = modules[low - 1]
            guard m.range.contains(pc), let table = m.table else { return nil }
            return table.rule(atFileOffset: pc - m.range.lowerBound &+ m.fileOffset)
        }
    }

    /// Forgets an address space torn down.
    func forget(_ root: PageTableRoot) {
        bySpace.withLock { _ = $0.removeValue(forKey: root) }
    }
}
