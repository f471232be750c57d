import Foundation
import Testing

/// `leakvisor attach` on a guest `leakvisor run` started without --track (issue 16, items 1-2):
/// lv-leak-tree --block allocates its 16 leak-test blocks and a stack-held one untracked and
/// blocks; the test attaches (the blocks it had are found in glibc's heap with their usable
/// sizes), lets it free the stack-held block and exit, runs lv-leak-loop (tracked from its start),
/// detaches, attaches and detaches again, and checks the final report: the pre-attach blocks classified by the exit scan
/// exactly as valgrind classes them, the new program's blocks with their site; and that detach
/// put back every byte. The attached guest is also saved right after the attach: a restore of
/// that file goes on tracking (no --track) and its report says the same.
@Suite(.serialized)
struct AttachTests {
    @Test func attachToUntrackedGuest() throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-attach-\(getpid()).json")
        let restoredReport = FileManager.default.temporaryDirectory.appendingPathComponent("lv-attach-restored-\(getpid()).json")
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("lv-attach-\(getpid()).lvsnap")
        defer { for file in [report, restoredReport, saved] { try? FileManager.default.removeItem(at: file) } }
        let script = """
            lv-leak-tree --block &
            read answer
            kill -USR1 $!; wait
            lv-leak-loop 5 0
            echo LV-LOOP-DONE
            read answer
            echo "LV-DONE $answer"
            """
        let guest = try LiveGuest(["run", "--timeout", "1800", "--interactive", "--", "sh", "-c", script])
        let blocked = guest.waitFor("lv-leak-tree blocked", timeout: 1500)
        #expect(blocked, "lv-leak-tree never blocked: \(guest.console.suffix(3000))")
        guard blocked else { _ = guest.finish(timeout: 5); return }
        let session = ["--session", "\(guest.pid)"]

        // A report before the attach: this monitor is not tracking.
        let early = try LeakVisorProcess.run(["report", "--json"] + session)
        #expect(early.status != 0 && early.stderr.contains("leakvisor attach"), "\(early.stderr)")

        let attach = try LeakVisorProcess.run(["attach", "--json", "--report", report.path] + session)
        #expect(attach.status == 0, "\(attach.stderr)")
        let attached = try JSONSerialization.jsonObject(with: Data(attach.stdout.utf8)) as? [String: Any] ?? [:]
        let preexisting = attached["preexisting"] as? [String: Any] ?? [:]
        // lv-leak-tree's 17 blocks at least (plus the static baseline and the shell's).
        #expect((preexisting["blocks"] as? Int ?? 0) >= 17, "\(attached)")
        #expect((preexisting["arenasFound"] as? Int ?? 0) >= 1, "\(attached)")
        #expect((attached["arming"] as? [String: Any])?["sites"] as? Int ?? 0 > 0, "\(attached)")
        // A second attach while tracking is refused.
        let again = try LeakVisorProcess.run(["attach"] + session)
        #expect(again.status != 0 && again.stderr.contains("already"), "\(again.stderr)")

        // Saved attached: the file carries the attached session's tracking.
        let snapshot = try LeakVisorProcess.run(["snapshot", "-o", saved.path] + session)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")

        guest.type("go\n")
        let looped = guest.waitFor("LV-LOOP-DONE", timeout: 600)
        #expect(looped, "\(guest.console.suffix(3000))")

        let detach = try LeakVisorProcess.run(["detach", "--json"] + session)
        #expect(detach.status == 0, "\(detach.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(detach.stdout.utf8)) as? [String: Any] ?? [:]
        #expect((summary["bytesRestored"] as? Int ?? 0) > 8, "\(summary)")
        #expect(summary["bytesChangedByGuest"] as? Int == 0, "\(summary)")
        #expect((summary["pagesCompared"] as? Int ?? 0) > 0 && summary["pagesCompared"] as? Int == summary["pagesIdentical"] as? Int,
                "\(summary)")

        // Attach and detach again: the same session re-arms (the kernel hooks at least) and detach
        // restores again.
        let reattach = try LeakVisorProcess.run(["attach", "--json"] + session)
        #expect(reattach.status == 0, "\(reattach.stderr)")
        let reattached = try JSONSerialization.jsonObject(with: Data(reattach.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(reattached["reattached"] as? Bool == true && reattached["kernelSeconds"] as? Double == 0, "\(reattached)")
        let redetach = try LeakVisorProcess.run(["detach", "--json"] + session)
        let second = try JSONSerialization.jsonObject(with: Data(redetach.stdout.utf8)) as? [String: Any] ?? [:]
        #expect((second["bytesRestored"] as? Int ?? 0) >= 4 && second["bytesChangedByGuest"] as? Int == 0, "\(second)")

        guest.type("finished\n")
        let result = guest.finish(timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-DONE finished"))
        #expect(result.stderr.contains("SUMMARY: LeakVisor:"), "\(result.stderr.suffix(2000))")

        try checkReport(report)

        // The saved attached guest, restored without --track: tracking goes on, the same report.
        let restored = try LiveGuest(["run", "--timeout", "900", "--interactive", "--restore", saved.path, "--report", restoredReport.path])
        usleep(500_000)
        restored.type("go\n")
        #expect(restored.waitFor("LV-LOOP-DONE", timeout: 600), "\(restored.console.suffix(3000))")
        restored.type("restored\n")
        let continued = restored.finish(timeout: 600)
        #expect(continued.status == 0 && continued.stdout.contains("LV-DONE restored"), "stderr: \(continued.stderr.suffix(3000))")
        #expect(continued.stderr.contains("tracking continues from the snapshot at "), "\(continued.stderr.suffix(2000))")
        try checkReport(restoredReport)
    }

    /// The final report: the pre-attach blocks by valgrind's classes, lv-leak-loop's leak at its site.
    func checkReport(_ report: URL) throws {
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any] ?? [:]
        let processes = root["processes"] as? [[String: Any]] ?? []
        func groups(_ executable: String) -> [[String: Any]] {
            processes.filter { $0["executable"] as? String == executable }.flatMap { $0["groups"] as? [[String: Any]] ?? [] }
        }
        // Pre-attach blocks by class: usable sizes (malloc(24) → 24, 32 → 40, 128 → 136, 48 → 56, 40 → 40).
        var before: [String: [Int]] = [:]
        for group in groups("/usr/bin/lv-leak-tree") where group["function"] as? String == "allocated before attach" {
            before[group["reachability"] as? String ?? "not scanned", default: []] += AllocationTrackingTests.blockSizes(group)
        }
        #expect(before["definitely lost"]?.sorted() == [24, 40, 40], "\(before)")
        #expect(before["indirectly lost"]?.sorted() == [24, 24, 24, 24, 24, 24, 40], "\(before)")
        #expect(before["possibly lost"] == [136], "\(before)")
        // The cache (5 × 56) and the static build's baseline; the stack-held block was freed.
        #expect((before["still reachable"] ?? []).filter { $0 == 56 }.count == 5, "\(before)")
        #expect(before["not scanned"] == nil, "\(before)")
        // The program started after the attach: its blocks with their site, as with --track.
        let loop = groups("/usr/bin/lv-leak-loop").filter { ($0["frames"] as? [[String: Any]] ?? []).count > 1 }
        let leaks = loop.filter { (($0["frames"] as? [[String: Any]])?[1]["function"] as? String) == "lv_loop_leak_32" }
        #expect(leaks.count == 1 && leaks.first?["blocks"] as? Int == 5 && leaks.first?["function"] as? String == "malloc"
                && leaks.first?["reachability"] as? String == "definitely lost", "\(loop)")
    }
}
