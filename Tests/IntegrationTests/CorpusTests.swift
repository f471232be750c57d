import Foundation
import Testing

/// Boots the real guest once with `--track user`, runs every build of the leak-check corpus
/// (`guest-images/default/corpus/CORPUS.md`: cases from LeakSanitizer's and valgrind memcheck's own
/// suites, each at -O0 and -O2, dynamically linked) one after another, and compares each process's
/// classes in the final JSON report (bytes and blocks of definitely, indirectly, possibly lost and
/// still reachable, and the blocks reachable only via a heuristic) with the expected ones: valgrind's
/// (`expected.tsv`), or the native process's where valgrind's answer is an artifact of valgrind
/// (`adjustments.tsv`, with the reason). No definite leak may be missed, at least 95% of the builds
/// must match exactly, and every build that does not is listed in `adjustments.tsv` as a known
/// difference, with its reason.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct CorpusTests {
    static let guestDirectory = "/corpus"

    @Test func everyCorpusBuildGetsThePeersClasses() throws {
        let corpus = try CorpusExpectations.load(
            from: LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/default/corpus"))
        let builds = LeakVisorProcess.imageDirectory.appendingPathComponent("corpus")
        #expect(corpus.expected.count >= 60, "expected.tsv lists \(corpus.expected.count) builds")
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-corpus-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        var arguments = ["run", "--track", "user", "--timeout", "2400", "--report", report.path]
        for name in corpus.expected.keys.sorted() {
            arguments += ["--add", builds.appendingPathComponent(name).path + ":\(Self.guestDirectory)/\(name)"]
        }
        let script = "for b in \(Self.guestDirectory)/*; do \"$b\"; echo \"LV-RAN $b $?\"; done; echo LV-DONE"
        let result = try LeakVisorProcess.run(arguments + ["--", "sh", "-c", script])
        #expect(result.stdout.contains("LV-DONE"), "\(result.stdout.suffix(3000))\n\(result.stderr.suffix(3000))")
        let statuses = Self.exitStatuses(result.stdout)
        let measured = try Self.classesByBuild(try Data(contentsOf: report))

        var exact = 0, lines: [String] = []
        for (name, expected) in corpus.expected.sorted(by: { $0.key < $1.key }) {
            #expect(statuses[name] == expected.exitStatus, "\(name) exited with \(statuses[name].map(String.init) ?? "nothing")")
            let got = measured[name] ?? CorpusClasses()
            let matches = got == expected.classes
            if matches { exact += 1 }
            lines.append("\(matches ? "=" : "≠") \(name): got \(got), expected \(expected.classes) (\(expected.source))")
            #expect(got.definitelyLost.blocks >= expected.classes.definitelyLost.blocks,
                    "\(name): a missed definite leak: got \(got), expected \(expected.classes) (\(expected.source))")
            if !matches {
                #expect(corpus.knownDifferences[name] != nil,
                        "\(name) differs and adjustments.tsv does not explain it: got \(got), expected \(expected.classes)")
            }
        }
        let share = Double(exact) / Double(max(corpus.expected.count, 1))
        print("[corpus] \(exact) of \(corpus.expected.count) builds match exactly (\(Int((share * 100).rounded(.down)))%)\n"
              + lines.joined(separator: "\n"))
        #expect(share >= 0.95, "only \(exact) of \(corpus.expected.count) builds match:\n\(lines.joined(separator: "\n"))")
    }

    /// The reference is valgrind's answer on this machine, not a table that drifted from it:
    /// scripts/corpus-valgrind.sh --check runs valgrind over every build and compares.
    @Test(.enabled(if: HostTools.which("valgrind") != nil, "needs valgrind (scripts/setup.sh)"))
    func valgrindStillGivesTheCommittedClasses() throws {
        let script = LeakVisorProcess.packageRoot.appendingPathComponent("scripts/corpus-valgrind.sh").path
        let result = try HostTools.run("/bin/bash", [script, "--check"])
        #expect(result.status == 0, "\(result.output.suffix(4000))")
    }

    /// `LV-RAN /corpus/NAME STATUS` lines: each build's exit status.
    static func exitStatuses(_ console: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for line in console.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "LV-RAN", let status = Int(fields[2]) else { continue }
            result[String(fields[1].split(separator: "/").last ?? "")] = status
        }
        return result
    }

    /// Per corpus build (the executable's file name), the class totals of its process's last scan.
    static func classesByBuild(_ json: Data) throws -> [String: CorpusClasses] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [String: CorpusClasses] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let executable = process["executable"] as? String, executable.hasPrefix(guestDirectory + "/") else { continue }
            let classes = (process["scan"] as? [String: Any])?["classes"] as? [String: Any] ?? [:]
            func total(_ value: Any?) -> CorpusTotal {
                let t = value as? [String: Int] ?? [:]
                return CorpusTotal(bytes: t["bytes"] ?? 0, blocks: t["blocks"] ?? 0)
            }
            var entry = CorpusClasses(definitelyLost: total(classes["definitelyLost"]), indirectlyLost: total(classes["indirectlyLost"]),
                                      possiblyLost: total(classes["possiblyLost"]), stillReachable: total(classes["stillReachable"]))
            for (name, value) in classes["reachableViaHeuristic"] as? [String: Any] ?? [:] {
                entry.viaHeuristic[name] = total(value)
            }
            // Blocks no scan classified (a scan that could not finish) count against the match.
            let unscanned = total(classes["notScanned"])
            if unscanned.blocks > 0 { entry.viaHeuristic["not scanned"] = unscanned }
            result[String(executable.dropFirst(guestDirectory.count + 1))] = entry
        }
        return result
    }
}
