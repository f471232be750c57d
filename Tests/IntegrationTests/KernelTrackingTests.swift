import Foundation
import Testing

/// Boots the real guest once with `--track kernel`, runs a busybox workload (files created and
/// removed, directory listings, fork/exec) and checks the kernel ledger the monitor prints:
/// allocations and frees were seen, each tracepoint event cost exactly one trap, no findings;
/// then detaches and checks that every kernel byte the monitor changed is back (the monitor
/// compares every page it wrote into) and that the guest goes on working untracked.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct KernelTrackingTests {
    static let workload = "for i in 1 2 3 4 5; do ls / > /dev/null; echo x > /tmp/f; cat /tmp/f > /dev/null; rm /tmp/f; done"

    @Test func theKernelLedgerSeesTheWorkloadOneTrapPerEventAndDetachRestoresEveryByte() throws {
        let script = """
            \(Self.workload)
            echo LV-READY
            read answer
            \(Self.workload)
            echo "LV-DONE $answer"
            """
        let guest = try LiveGuest(["run", "--track", "kernel", "--timeout", "1200", "--interactive", "--", "sh", "-c", script])
        let ready = guest.waitFor("LV-READY", timeout: 1000)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000)) \(guest.monitorOutput.suffix(3000))")
        guard ready else { _ = guest.finish(timeout: 5); return }
        #expect(guest.monitorOutput.contains("kernel armed: tracepoints kmalloc, kmem_cache_alloc, kfree, kmem_cache_free enabled"),
                "\(guest.monitorOutput)")

        let detach = try LeakVisorProcess.run(["detach", "--json", "--session", "\(guest.pid)"])
        #expect(detach.status == 0, "\(detach.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(detach.stdout.utf8)) as? [String: Any] ?? [:]
        // 6 entry hooks (5 bytes), 4 probe lists (8 bytes), and the jump sites (2 or 5 bytes each).
        #expect((summary["bytesRestored"] as? Int ?? 0) >= 6 * 5 + 4 * 8 + 4 * 2, "\(summary)")
        #expect(summary["bytesChangedByGuest"] as? Int == 0, "\(summary)")
        #expect((summary["pagesCompared"] as? Int ?? 0) > 2 && summary["pagesCompared"] as? Int == summary["pagesIdentical"] as? Int,
                "\(summary)")

        guest.type("finished\n")
        let result = guest.finish(timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-DONE finished"), "\(result.stdout.suffix(2000))")
        #expect(!result.stdout.contains("BUG:") && !result.stdout.contains("Oops") && !result.stdout.contains("jump_label"),
                "\(result.stdout.suffix(3000))")

        // The closing kernel summary.
        let text = result.stderr
        let line = text.split(separator: "\n").first { $0.hasPrefix("kernel allocations: ") }.map(String.init) ?? ""
        let allocated = Self.number(in: line, after: "kernel allocations: ", before: " object(s) allocated")
        let freed = Self.number(in: line, after: "), ", before: " freed")
        #expect((allocated ?? 0) > 100 && (freed ?? 0) > 100, "\(line)")
        // vmalloc and bulk allocations are followed to their return: two traps per call.
        #expect(text.contains("__vmalloc_node_range") && text.contains("kmem_cache_alloc_bulk"), "\(text.suffix(3000))")
        #expect(text.contains("  findings: 0"), "\(text.suffix(3000))")
        // Each tracepoint hook: as many traps as events.
        for hook in ["__traceiter_kmalloc", "__traceiter_kmem_cache_alloc", "__traceiter_kfree", "__traceiter_kmem_cache_free"] {
            guard let range = text.range(of: "\(hook) ") else {
                Issue.record("no trap count for \(hook): \(text.suffix(3000))")
                continue
            }
            let counts = text[range.upperBound...].prefix { $0 != "," && $0 != "\n" }.split(separator: "/").compactMap { Int($0) }
            #expect(counts.count == 2 && counts[0] == counts[1] && counts[0] > 0, "\(hook): \(counts)")
        }
    }

    static func number(in text: String, after prefix: String, before suffix: String) -> Int? {
        guard let start = text.range(of: prefix), let end = text[start.upperBound...].range(of: suffix) else { return nil }
        return Int(text[start.upperBound..<end.lowerBound].split(separator: " ").last ?? "")
    }
}
