import Foundation
import Testing

/// `--exitless` with rings of 16 records, so that they fill: the stubs' full-ring `int3` makes
/// the monitor drain and the thread retry (at an allocation's entry record and at its exit
/// record). Every release and allocation must still be counted once: a program that frees
/// everything leaves nothing, the threaded one exactly its known leaks.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct ExitlessFullRingTests {
    @Test func fullRingsAreDrainedAndNoReleaseIsLostOrCountedTwice() throws {
        let bin = LeakVisorProcess.imageDirectory.appendingPathComponent("host-bin")
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-exitless-ring-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let result = try LeakVisorProcess.run([
            "run", "--track", "user", "--exitless", "--exitless-ring-records", "16", "--timeout", "1200", "--report", report.path,
            "--add", bin.appendingPathComponent("lv-bench-malloc-dynamic").path + ":/lv-bench-malloc-dynamic",
            "--add", bin.appendingPathComponent("lv-leak-threads-dynamic").path + ":/lv-leak-threads-dynamic",
            "--", "sh", "-c", "lv-bench-malloc 300; /lv-bench-malloc-dynamic 300; /lv-leak-threads-dynamic",
        ])
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let summary = result.stderr.split(separator: "\n").first { $0.contains("leakvisor: exitless: ") }.map(String.init) ?? ""
        // 300 frees each from the two benchmarks (64 of them in a row at the end), 48 from the threads.
        let ringReleases = Int(summary.components(separatedBy: "exitless: ").last?.split(separator: " ").first ?? "") ?? 0
        let ownTraps = Int(summary.components(separatedBy: "entry point(s) on the exitless path, ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(ringReleases >= 600 + 48, "\(summary)")
        // The static benchmark's 300 mallocs come through the rings too (each an entry and an exit record).
        let ringAllocations = Int(summary.components(separatedBy: " release(s) and ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(ringAllocations >= 300, "\(summary)")
        #expect(ownTraps > 6, "full rings drained: \(summary)")

        let processes = try AllocationTrackingTests().processes(Data(contentsOf: report))
        typealias Block = AllocationTrackingTests.Block
        #expect(AllocationTrackingTests.tally(processes["/usr/bin/lv-bench-malloc"]?.blocks ?? [])
                == AllocationTrackingTests.tally(AllocationTrackingTests.staticBaseline), "\(processes["/usr/bin/lv-bench-malloc"].map { "\($0)" } ?? "absent")")
        #expect(processes["/lv-bench-malloc-dynamic"]?.blocks.isEmpty ?? true, "\(processes["/lv-bench-malloc-dynamic"].map { "\($0)" } ?? "")")
        let leakLine = try AllocationTrackingTests().tagLine("threads-leak", "lv-leak-threads.c")
        let threads = (0..<4).flatMap { i in Array(repeating: Block("malloc", 64 * (i + 1), "lv_thread_leak_block", line: leakLine), count: i + 1) }
        let dtv = Array(repeating: Block("calloc", 272, "allocate_dtv"), count: 4)
        #expect(AllocationTrackingTests.tally(processes["/lv-leak-threads-dynamic"]?.blocks ?? []) == AllocationTrackingTests.tally(threads + dtv),
                "\(processes["/lv-leak-threads-dynamic"].map { "\($0)" } ?? "absent")")
        for (executable, process) in processes { #expect(process.findings.isEmpty, "\(executable): \(process.findings)") }
    }
}
