import AllocationLedger
import Foundation
import Introspection
import LeakAnalysis
import LeakJournal
import Reachability
import X86

/// Reports for journal tests, made the real way: blocks in an `AllocationLedger`, a scan's
/// verdicts, and `LeakReportBuilder`.
enum JournalFixtures {
    static let space = PageTableRoot(cr3: 0x1000)
    static let second: UInt64 = 1_000_000_000

    /// A site: the return address below the allocator, and its blocks' sizes.
    struct Site {
        var pc: UInt64
        var sizes: [UInt64]
        var leaked = false
    }

    /// A report at `seconds` of one process (pid 42, "prog") holding `sites`' blocks.
    static func report(seconds: Double, sites: [Site], state exited: Bool = false) -> LeakReport {
        let ledger = AllocationLedger()
        ledger.identify(space, as: ProcessIdentity(pid: 42, command: "prog", executable: "/usr/bin/prog"), modules: [])
        var address: UInt64 = 0x10_0000
        var verdicts: [UInt64: BlockVerdict] = [:]
        for site in sites {
            for size in site.sizes {
                ledger.allocate(in: space, address: address, size: size, function: .malloc, stack: [0x401000, site.pc],
                                thread: 42, time: 0)
                verdicts[address] = BlockVerdict(reachability: site.leaked ? .directLeak : .reachable, leader: nil,
                                                 indirectBytes: 0, lastWritten: 0)
                address += 0x1000
            }
        }
        let time = UInt64(seconds * 1e9)
        ledger.record(SpaceScan(time: time, verdicts: verdicts,
                                figures: ScanFigures(kind: "full", threads: 1, rootBytes: 4096, bytesScanned: 8192, pagesRead: 2,
                                                     pagesReused: 0, pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0),
                                notes: []),
                      for: space, staleAfter: 60 * second)
        if exited { ledger.retireAll(as: .exited, time: time) }
        return LeakReportBuilder(files: GuestSymbolFiles(roots: [])).build(ledger.snapshot(), seconds: seconds)
    }

    static let identity = RunIdentity(leakvisorVersion: "test", commandLine: ["leakvisor", "run", "--track", "user"],
                                      kernel: "/k/vmlinux", image: "/k/initramfs.cpio", startedUnixTime: 1_700_000_000, hostName: "host")

    /// A fresh path in a new temporary directory.
    static func temporaryPath(_ name: String = "journal.sqlite") -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lv-journal-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name).path
    }

    /// The site key the journal gives a fixture site.
    static func key(_ pc: UInt64) -> SiteOfProgram {
        SiteOfProgram(command: "prog", siteKey: "malloc;0x401000;0x\(String(pc, radix: 16))")
    }
}
