import Foundation
import Testing

/// Boots the real guest once with `--track user --scan-every`, runs the reachability test
/// programs (LEAK-PROGRAMS.md) and checks each block's class exactly: at exit (the scan in the
/// exit hook) and, for lv-leak-hold, while it is blocked with references only in a register and
/// on its stack (the scan `leakvisor report` makes). Also: growth of a referenced, stale cache
/// is flagged and a hot set is not, and --error-exitcode turns definite leaks into the status.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct ReachabilityTests {
    static let dynamicPrograms = ["lv-leak-tree", "lv-leak-threads", "lv-leak-cxx"]
    /// The 5 start-up blocks of static glibc, all still reachable (two only from RELRO).
    static let staticBaseline = [10, 40, 160, 320, 1225]

    /// Per executable: block sizes by class ("definitely lost", ...), sorted.
    typealias Classes = [String: [Int]]

    @Test func eachProgramsBlocksGetExactlyValgrindsClasses() throws {
        let bin = LeakVisorProcess.imageDirectory.appendingPathComponent("host-bin")
        var arguments = ["run", "--track", "user", "--scan-every", "4s", "--stale-after", "3s", "--error-exitcode", "7",
                         "--timeout", "2400", "--interactive"]
        for name in Self.dynamicPrograms {
            arguments += ["--add", bin.appendingPathComponent("\(name)-dynamic").path + ":/\(name)-dynamic"]
        }
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-reach-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        arguments += ["--report", report.path]
        let script = """
            lv-leak-tree; /lv-leak-tree-dynamic; lv-leak-basic; lv-leak-threads; /lv-leak-threads-dynamic; /lv-leak-cxx-dynamic
            lv-grow-cache 12 300
            lv-leak-hold & pid=$!
            sleep 1; echo LV-HOLD-READY
            read answer
            kill -USR1 $pid; wait $pid
            echo "LV-DONE $answer"
            """
        let guest = try LiveGuest(arguments + ["--", "sh", "-c", script])
        let ready = guest.waitFor("LV-HOLD-READY", timeout: 2000) && guest.waitFor("lv-prog lv-leak-hold blocked", timeout: 60)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000))")
        guard ready else { _ = guest.finish(timeout: 5); return }

        // While lv-leak-hold is blocked: `leakvisor report` scans the live processes first.
        let live = try LeakVisorProcess.run(["report", "--json", "--session", "\(guest.pid)"])
        #expect(live.status == 0, "\(live.stderr)")
        let blocked = try classes(Data(live.stdout.utf8))["/usr/bin/lv-leak-hold"]
        #expect(blocked == ["still reachable": [72, 88] + Self.staticBaseline, "possibly lost": [104], "definitely lost": [120]].sortedValues,
                "while blocked: \(blocked.map { "\($0)" } ?? "not in the report"): \(live.stdout.prefix(4000))")

        guest.type("finished\n")
        let result = guest.finish(timeout: 900)
        #expect(result.status == 7, "definite leaks with --error-exitcode 7; stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-DONE finished"))
        #expect(!result.stdout.contains("Segmentation fault"), "\(result.stdout.suffix(3000))")
        #expect(result.stderr.contains("LEAK SUMMARY: definitely lost: 96 byte(s) in 3 object(s); indirectly lost: 176 byte(s) in 7 object(s);"
                                       + " possibly lost: 128 byte(s) in 1 object(s); still reachable: 240 byte(s) in 5 object(s)"),
                "the dynamic lv-leak-tree's summary line: \(result.stderr.suffix(6000))")
        #expect(result.stderr.contains("leakvisor: scan (every 4 s)"), "periodic scans ran")

        let json = try Data(contentsOf: report)
        let final = try classes(json)
        func expect(_ executable: String, _ wanted: Classes, _ line: SourceLocation = #_sourceLocation) {
            #expect(final[executable] == wanted.sortedValues, "\(executable): \(final[executable].map { "\($0)" } ?? "not in the report")",
                    sourceLocation: line)
        }
        let tree: Classes = ["definitely lost": [24, 32, 40], "indirectly lost": Array(repeating: 24, count: 6) + [32],
                             "possibly lost": [128], "still reachable": Array(repeating: 48, count: 5)]
        expect("/lv-leak-tree-dynamic", tree)
        expect("/usr/bin/lv-leak-tree", tree.merging(["still reachable": Self.staticBaseline]) { $0 + $1 })
        expect("/usr/bin/lv-leak-basic", ["definitely lost": [100, 200, 300], "still reachable": Self.staticBaseline])
        // Threads: their leaked blocks are lost; their DTVs are held by the cached stacks' TCBs
        // through `dtv + 1` only (possibly lost, as valgrind says).
        let threads: Classes = ["definitely lost": (1...4).flatMap { Array(repeating: 64 * $0, count: $0) },
                                "possibly lost": Array(repeating: 272, count: 4)]
        expect("/lv-leak-threads-dynamic", threads)
        expect("/usr/bin/lv-leak-threads", threads.merging(["still reachable": Self.staticBaseline]) { $0 + $1 })
        expect("/lv-leak-cxx-dynamic", ["definitely lost": [4, 48, 100], "still reachable": [72704]])
        expect("/usr/bin/lv-leak-hold", ["definitely lost": [120], "still reachable": Self.staticBaseline])
        expect("/usr/bin/lv-grow-cache", ["definitely lost": [24, 24],
                                          "still reachable": Array(repeating: 1024, count: 48) + Array(repeating: 96, count: 8) + Self.staticBaseline])

        // Growth: the cold cache site (written once per entry) is flagged; the hot set is not.
        let growth = try growthSites(json)["/usr/bin/lv-grow-cache"] ?? []
        #expect(growth == ["lv_cold_add"], "\(growth)")
        #expect(result.stderr.contains("Growing while referenced"))
    }

    /// Per executable, block sizes by class, from a JSON report.
    private func classes(_ json: Data) throws -> [String: Classes] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [String: Classes] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let executable = process["executable"] as? String else { continue }
            var classes: Classes = [:]
            for group in process["groups"] as? [[String: Any]] ?? [] {
                classes[group["reachability"] as? String ?? "not scanned", default: []] += AllocationTrackingTests.blockSizes(group)
            }
            result[executable] = classes.sortedValues
        }
        return result
    }

    /// Per executable, the allocating functions of the sites flagged as growing.
    private func growthSites(_ json: Data) throws -> [String: [String]] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [String: [String]] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let executable = process["executable"] as? String else { continue }
            result[executable] = (process["growth"] as? [[String: Any]] ?? []).map { site in
                let frames = site["frames"] as? [[String: Any]] ?? []
                return frames.count > 1 ? AllocationTrackingTests.callerName(frames[1]) : "?"
            }
        }
        return result
    }
}

extension Dictionary where Value == [Int] {
    /// Each list sorted, so classes compare regardless of order.
    var sortedValues: Self { mapValues { $0.sorted() } }
}
