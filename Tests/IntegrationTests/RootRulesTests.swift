import Foundation
import Testing

/// Boots the real guest once with `--track user` and checks the root rules and valgrind's
/// heuristics (docs/reachability.md) on `lv-root-rules` and `lv-heuristics` (LEAK-PROGRAMS.md),
/// class by class: a leak whose only copies are stale ones below `exit`'s entry is definitely lost;
/// a leaked mmapped chunk is no root; a pointer held only in xmm5 of a spinning thread keeps its
/// block reachable while the thread holds it; each heuristic's block is still reachable via it.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct RootRulesTests {
    /// The 5 start-up blocks of static glibc, all still reachable (the first is strlen of the
    /// executable's directory + 2: 2 for programs in `/`).
    static let staticBaseline = [2, 40, 160, 320, 1225]

    @Test func rootsAtExitAndWhileRunningAndTheHeuristicsGiveValgrindsClasses() throws {
        let bin = LeakVisorProcess.imageDirectory.appendingPathComponent("guest-bin")
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-roots-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        var arguments = ["run", "--track", "user", "--timeout", "1800", "--interactive", "--report", report.path]
        for name in ["lv-root-rules", "lv-heuristics"] {
            arguments += ["--add", bin.appendingPathComponent(name).path + ":/\(name)"]
        }
        let script = """
            /lv-root-rules exit-stale; /lv-root-rules big-chunk; /lv-heuristics
            /lv-root-rules xmm
            echo LV-DONE
            """
        let guest = try LiveGuest(arguments + ["--", "sh", "-c", script])
        let holding = guest.waitFor("lv-prog lv-root-rules holding", timeout: 1500)
        #expect(holding, "the guest never reached the xmm case: \(guest.console.suffix(3000))")
        guard holding else { _ = guest.finish(timeout: 5); return }

        // While the thread holds the pointer in xmm5: `leakvisor report` scans the live process.
        let pids = Self.readyPIDs(guest.console)
        #expect(pids.count == 4, "\(guest.console.suffix(2000))")
        let live = try LeakVisorProcess.run(["report", "--json", "--session", "\(guest.pid)"])
        #expect(live.status == 0, "\(live.stderr)")
        let running = try Self.processes(Data(live.stdout.utf8))
        if pids.count == 4 {
            let classes = running[pids[3]]?.classes ?? [:]
            #expect(classes["still reachable"]?.contains(56) == true && classes["definitely lost"] == nil,
                    "xmm5 holds the 56-byte block: \(live.stdout.prefix(4000))")
        }

        guest.type("go\n")
        let result = guest.finish(timeout: 600)
        #expect(result.stdout.contains("LV-DONE"), "\(result.stdout.suffix(3000))")
        let final = try Self.processes(try Data(contentsOf: report))
        guard pids.count == 4 else { return }
        #expect(final[pids[0]]?.classes == ["definitely lost": [48], "still reachable": Self.staticBaseline].sortedValues,
                "exit-stale: \(String(describing: final[pids[0]]))")
        #expect(final[pids[1]]?.classes == ["definitely lost": [262_144], "indirectly lost": [40],
                                            "still reachable": Self.staticBaseline].sortedValues,
                "big-chunk: \(String(describing: final[pids[1]]))")
        #expect(final[pids[2]]?.classes == ["possibly lost": [32],
                                            "still reachable": [32, 33, 39, 56, 72_704] + Self.staticBaseline].sortedValues,
                "lv-heuristics: \(String(describing: final[pids[2]]))")
        #expect(final[pids[2]]?.viaHeuristic == ["stdstring": [1, 33], "length64": [1, 39], "newarray": [1, 56],
                                                 "multipleinheritance": [1, 32]],
                "lv-heuristics: \(String(describing: final[pids[2]]))")
        // The thread's DTV (272 bytes) is held by its cached stack's TCB through dtv + 1: possibly lost, as valgrind says.
        #expect(final[pids[3]]?.classes == ["definitely lost": [56], "possibly lost": [272], "still reachable": Self.staticBaseline].sortedValues,
                "xmm at exit: \(String(describing: final[pids[3]]))")
        #expect(result.stderr.contains("(of which reachable via heuristic: stdstring 33 byte(s) in 1 object(s), length64 39 byte(s) in 1 object(s),"
                                       + " newarray 56 byte(s) in 1 object(s), multipleinheritance 32 byte(s) in 1 object(s))"),
                "\(result.stderr.suffix(4000))")
    }

    /// The pids of `lv-prog NAME ready pid=N` lines, in order.
    static func readyPIDs(_ console: String) -> [Int] {
        console.split(whereSeparator: \.isNewline).compactMap { line in
            guard let range = line.range(of: " ready pid=") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    struct ProcessClasses: CustomStringConvertible {
        /// Block sizes by class, sorted.
        var classes: [String: [Int]] = [:]
        /// Per heuristic: [blocks, bytes].
        var viaHeuristic: [String: [Int]] = [:]
        var description: String { "\(classes) via \(viaHeuristic)" }
    }

    /// Per pid, block sizes by class and the heuristic totals, from a JSON report.
    static func processes(_ json: Data) throws -> [Int: ProcessClasses] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [Int: ProcessClasses] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let pid = process["pid"] as? Int else { continue }
            var entry = ProcessClasses()
            for group in process["groups"] as? [[String: Any]] ?? [] {
                entry.classes[group["reachability"] as? String ?? "not scanned", default: []] += AllocationTrackingTests.blockSizes(group)
            }
            entry.classes = entry.classes.sortedValues
            let scan = process["scan"] as? [String: Any], classes = scan?["classes"] as? [String: Any]
            for (name, total) in classes?["reachableViaHeuristic"] as? [String: [String: Int]] ?? [:] {
                entry.viaHeuristic[name] = [total["blocks"] ?? 0, total["bytes"] ?? 0]
            }
            result[pid] = entry
        }
        return result
    }
}
