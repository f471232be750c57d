import X86
import AllocationLedger
import AllocationTracing
import Foundation
import Glibc
import LeakAnalysis
import Reachability
@testable import Introspection

/// The report writers over a ledger the input fills: allocations and releases at any address and
/// size (a hostile process controls both), identities with guest strings, module maps, scan
/// verdicts and address-space ends; then the report is built, rendered as text and as JSON, and
/// the JSON read back.
///
/// Block sizes are any UInt64: the ledger itself refuses a block whose end wraps or leaves user
/// space, and the report's sums saturate. `LEAKVISOR_FUZZ_REPORT_SIZES=user` bounds them by the
/// user half (2^47), so more inputs reach the report with many accepted blocks.
enum ReportTarget {
    static let spaces: [PageTableRoot] = [0x1000, 0x2000, UInt64.max].map { PageTableRoot(cr3: $0) }
    nonisolated(unsafe) static var sizeLimit: UInt64 = .max

    static let target = FuzzTarget(name: "report", prepare: {
        if getenv("LEAKVISOR_FUZZ_REPORT_SIZES").map({ String(cString: $0) }) == "user" { sizeLimit = 1 << 47 }
    }) { input in
        var input = input
        let ledger = AllocationLedger()
        var addresses: [UInt64] = []
        var steps = 0
        while !input.isAtEnd, steps < 64 {
            steps += 1
            let kind = input.u8()
            let space = spaces[Int(kind >> 4) % spaces.count]
            let functions = AllocatorFunction.allCases
            switch kind & 0xF {
            case 0...5:
                let address = input.u64(), size = sizeLimit == .max ? input.u64() : input.u64() % sizeLimit
                let function = functions[Int(input.u8()) % functions.count]
                let stack = (0..<Int(input.u8() % 4)).map { _ in input.u64() }
                ledger.allocate(in: space, address: address, size: size, function: function, stack: stack,
                                thread: Int32(bitPattern: input.u32()), time: input.u64())
                addresses.append(address)
            case 6, 7:
                let pick = input.u8()
                let address = addresses.isEmpty || pick == 0xFF ? input.u64() : addresses[Int(pick) % addresses.count]
                ledger.release(in: space, address: address, function: functions[Int(input.u8()) % functions.count],
                               stack: [input.u64()], thread: Int32(bitPattern: input.u32()), time: input.u64(),
                               strict: pick & 1 == 0)
            case 8:
                let name = String(decoding: input.take(Int(input.u8() % 32)), as: UTF8.self)
                let module = GuestMapping(start: input.u64(), end: input.u64(), permissions: "r-xp", fileOffset: input.u64(),
                                          deviceMajor: 0, deviceMinor: 0, inode: 0, path: name, fileObject: 0)
                ledger.identify(space, as: ProcessIdentity(pid: Int32(bitPattern: input.u32()), command: name, executable: name),
                                modules: [module])
            case 9, 10:
                let classes = ReachabilityClass.allCases
                var verdicts: [UInt64: BlockVerdict] = [:]
                for address in addresses {
                    let pick = input.u8()
                    verdicts[address] = BlockVerdict(reachability: classes[Int(pick) % classes.count],
                                                     leader: pick & 0x80 != 0 ? addresses.first : nil,
                                                     indirectBytes: input.u64() % sizeLimit, lastWritten: input.u64())
                }
                let figures = ScanFigures(kind: "full", threads: Int(input.u8()), rootBytes: input.u64(), bytesScanned: input.u64(),
                                          pagesRead: Int(input.u32()), pagesReused: Int(input.u32()), pagesDirtied: Int(input.u32()),
                                          pauseSeconds: Double(input.u32()), totalSeconds: Double(input.u32()))
                ledger.record(SpaceScan(time: input.u64(), verdicts: verdicts, figures: figures, notes: ["fuzz"]),
                              for: space, staleAfter: input.u64())
            case 11:
                ledger.retire(space, as: [.exited, .guestStopped, .live][Int(input.u8()) % 3], time: input.u64())
            default:
                ledger.retireAll(as: .guestStopped, time: input.u64())
            }
        }
        _ = ledger.memoryUse()
        var builder = LeakReportBuilder(files: GuestSymbolFiles(roots: []))
        builder.staleAfterSeconds = Double(input.u16())
        let report = builder.build(ledger.snapshot(), seconds: Double(input.u32()) / 1000)
        _ = LeakReportText.render(report, maxFrames: Int(input.u8() % 20), showReachable: true)
        _ = LeakReportText.render(report)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let json = try? encoder.encode(report) {
            _ = try? JSONDecoder().decode(LeakReport.self, from: json)
        }
    }
}
