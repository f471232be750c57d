import Foundation
import Testing

/// Snapshots of the real guest: a run starts from the suite's snapshot of the booted image, a
/// guest saved mid-run continues from the same point as often as it is restored, and a file that
/// does not fit (truncated, damaged, made for another initramfs) is refused before any guest runs.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct SnapshotTests {
    @Test func aRunStartsFromTheSnapshotAndASavedGuestContinuesTwice() throws {
        // A run from the snapshot cache (scripts/test.sh makes the suite's snapshot first).
        let started = Date()
        let quick = try LeakVisorProcess.run(["run", "--timeout", "1500", "--", "sh", "-c", "echo from-snapshot; exit 4"])
        print("snapshot test: a run of `echo` took \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(quick.stderr)")
        #expect(quick.status == 4, "stderr: \(quick.stderr)")
        #expect(quick.stdout.contains("from-snapshot"))
        #expect(quick.stderr.contains("snapshot: restored ") || quick.stderr.contains("snapshot: saved "), "stderr: \(quick.stderr)")

        // A guest waiting for console input is saved mid-run, answers, and is restored twice.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-test-\(getpid()).lvsnap")
        defer { try? FileManager.default.removeItem(at: file) }
        // The kernel makes its boot id on the first read: read before the save, it is the original's.
        let script = "id=$(cut -c1-8 /proc/sys/kernel/random/boot_id); echo LV-WAITING; read answer; echo \"LV-GOT $answer $id\"; exit 3"
        let original = try LiveGuest(["run", "--timeout", "1500", "--interactive", "--", "sh", "-c", script])
        let waiting = original.waitFor("LV-WAITING", timeout: 1400)
        #expect(waiting, "the guest never got to its read: \(original.console.suffix(2000))")
        guard waiting else { _ = original.finish(timeout: 5); return }
        usleep(500_000)
        let saved = try LeakVisorProcess.run(["snapshot", "--session", "\(original.pid)", "-o", file.path])
        #expect(saved.status == 0, "snapshot: \(saved.stderr)")
        #expect(saved.stdout.contains("saved \(file.path)"), "snapshot: \(saved.stdout)")
        original.type("first\n")
        let first = original.finish(timeout: 300)
        #expect(first.status == 3, "stderr: \(first.stderr)")
        let bootID = try #require(gotLine(first.stdout, "first"), "console: \(first.stdout.suffix(1000))")

        for answer in ["second", "third"] {
            let restored = try LiveGuest(["run", "--timeout", "600", "--interactive", "--restore", file.path])
            // The restored guest sits in its `read` as the original did: whatever is typed now is its answer.
            usleep(500_000)
            restored.type("\(answer)\n")
            let result = restored.finish(timeout: 300)
            #expect(result.status == 3, "restore (\(answer)): \(result.stderr)")
            #expect(result.stderr.contains("snapshot: restored \(file.path)"), "stderr: \(result.stderr)")
            // The same boot, continued: the boot id the shell read before the save.
            #expect(gotLine(result.stdout, answer) == bootID, "console: \(result.stdout.suffix(1000))")
            #expect(!result.stdout.contains("LV-WAITING"), "the restored guest started over")
        }

        // A snapshot saved mid-run continues what it ran: a new command is refused.
        let refused = try LeakVisorProcess.run(["run", "--restore", file.path, "--", "true"])
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("continues that"), "stderr: \(refused.stderr)")
    }

    /// A tracked guest saved mid-run (a process blocked with live blocks, others already exited
    /// with leaks) goes on being tracked from that point on every restore: the blocked process's
    /// frees after the restore match the ledger's blocks (no unknown frees), and the original run
    /// and two restores give the same report.
    @Test func aTrackedGuestSavedMidRunGivesTheSameReportOnEveryRestore() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-tracked-snap-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tracked.lvsnap")
        let script = "lv-leak-basic >/dev/null; lv-leak-hold >/tmp/hold & p=$!; until grep -q blocked /tmp/hold; do sleep 0.2; done; "
            + "echo LV-WAITING; read answer; kill -USR1 $p; wait $p; lv-leak-cxx >/dev/null; echo LV-DONE $answer; exit 0"
        let reports = (0..<3).map { dir.appendingPathComponent("report-\($0).json").path }
        let original = try LiveGuest(["run", "--track", "user", "--scan-every", "2s", "--report", reports[0], "--timeout", "1500",
                                      "--interactive", "--", "sh", "-c", script])
        let waiting = original.waitFor("LV-WAITING", timeout: 1400)
        #expect(waiting, "the guest never got to its read: \(original.console.suffix(2000))")
        guard waiting else { _ = original.finish(timeout: 5); return }
        let saved = try LeakVisorProcess.run(["snapshot", "--session", "\(original.pid)", "-o", file.path])
        #expect(saved.status == 0, "snapshot: \(saved.stderr)")
        original.type("first\n")
        let first = original.finish(timeout: 300)
        #expect(first.status == 0, "stderr: \(first.stderr)")
        #expect(first.stdout.contains("LV-DONE first"))

        for (index, answer) in ["second", "third"].enumerated() {
            // No --track: a tracked guest's snapshot goes on being tracked; --report still applies.
            var arguments = ["run", "--timeout", "600", "--interactive", "--restore", file.path, "--report", reports[index + 1]]
            if index == 1 { arguments += ["--track", "user"] }
            let restored = try LiveGuest(arguments)
            usleep(500_000)
            restored.type("\(answer)\n")
            let result = restored.finish(timeout: 300)
            #expect(result.status == 0, "restore (\(answer)): \(result.stderr)")
            #expect(result.stdout.contains("LV-DONE \(answer)"), "console: \(result.stdout.suffix(1000))")
            #expect(result.stderr.contains("tracking continues from the snapshot at "), "stderr: \(result.stderr)")
        }
        let projections = try reports.map { try Self.reportProjection(URL(fileURLWithPath: $0)) }
        print("snapshot test: tracked report after the save and two restores: \(projections[0])")
        // lv-leak-basic 3 blocks (600 B), lv-leak-hold 1 (120 B), lv-leak-cxx 3 (152 B) definitely lost.
        #expect(projections[0].contains("definitelyLost=7/872"), "\(projections[0])")
        #expect(!projections[0].contains("free of an unknown address"), "\(projections[0])")
        #expect(projections[1] == projections[0])
        #expect(projections[2] == projections[0])

        // --track cannot change the mode the snapshot tracks with.
        let changed = try LeakVisorProcess.run(["run", "--restore", file.path, "--track", "user-malloc"])
        #expect(changed.status == 125)
        #expect(changed.stderr.contains("--track user"), "stderr: \(changed.stderr)")
    }

    /// What must be equal between the reports of one tracked run and its restores: per process
    /// (by command) each group's class, function, blocks and bytes, the findings' kinds, and the
    /// summary's classes; not times or addresses.
    static func reportProjection(_ url: URL) throws -> String {
        let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let summary = try #require(json["summary"] as? [String: Any])
        let classes = try #require(summary["classes"] as? [String: [String: Any]])
        var parts = classes.keys.sorted().map { "\($0)=\(classes[$0]?["blocks"] ?? "")/\(classes[$0]?["bytes"] ?? "")" }
        for process in (json["processes"] as? [[String: Any]] ?? []) {
            let groups = (process["groups"] as? [[String: Any]] ?? []).map {
                "\($0["reachability"] ?? "-") \($0["function"] ?? "") \($0["blocks"] ?? "")x \($0["bytes"] ?? "")"
            }.sorted()
            let findings = (process["findings"] as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "")" }.sorted()
            parts.append("\(process["command"] ?? "?"): \(groups.joined(separator: ", ")) findings: \(findings.joined(separator: ", "))")
        }
        return parts.joined(separator: "; ")
    }

    /// Damaged and foreign files are refused with a clear error, before any guest runs.
    @Test func snapshotsThatDoNotFitAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-snap-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A real snapshot to damage: the suite's cached one, else the one a run saves.
        let cache = ProcessInfo.processInfo.environment["LEAKVISOR_SNAPSHOT_DIR"].map { URL(fileURLWithPath: $0) }
        let cached = try cache.flatMap { try FileManager.default.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil) }?
            .first { $0.pathExtension == "lvsnap" }
        guard let original = cached else {
            print("snapshot test: no snapshot in LEAKVISOR_SNAPSHOT_DIR (\(cache?.path ?? "unset")) at this moment; only foreign files checked")
            return
        }
        let header = try FileHandle(forReadingFrom: original).read(upToCount: 1 << 16) ?? Data()

        let truncated = dir.appendingPathComponent("truncated.lvsnap")
        try header.prefix(40_000).write(to: truncated)
        let t = try LeakVisorProcess.run(["run", "--restore", truncated.path])
        #expect(t.status == 125)
        #expect(t.stderr.contains("cannot restore \(truncated.path)") && t.stderr.contains("trunc"), "stderr: \(t.stderr)")

        var bytes = [UInt8](header)
        bytes[20] ^= 0xFF
        let damaged = dir.appendingPathComponent("damaged.lvsnap")
        try Data(bytes).write(to: damaged)
        let d = try LeakVisorProcess.run(["run", "--restore", damaged.path])
        #expect(d.status == 125)
        #expect(d.stderr.contains("cannot restore \(damaged.path)"), "stderr: \(d.stderr)")

        let foreignFile = dir.appendingPathComponent("not-a-snapshot")
        try Data("just text\n".utf8).write(to: foreignFile)
        let f = try LeakVisorProcess.run(["run", "--restore", foreignFile.path])
        #expect(f.status == 125)
        #expect(f.stderr.contains("not a"), "stderr: \(f.stderr)")

        // Made for another initramfs: the image's with four more bytes.
        var initramfs = try Data(contentsOf: LeakVisorProcess.imageDirectory.appendingPathComponent("initramfs.cpio"))
        initramfs.append(contentsOf: [0, 0, 0, 0])
        let other = dir.appendingPathComponent("other.cpio")
        try initramfs.write(to: other)
        let m = try LeakVisorProcess.run(["run", "--restore", original.path, "--initrd", other.path,
                                          "--kernel", LeakVisorProcess.imageDirectory.appendingPathComponent("vmlinux").path])
        #expect(m.status == 125)
        #expect(m.stderr.contains("initramfs"), "stderr: \(m.stderr)")
    }

    /// The boot id in the "LV-GOT answer id" line the guest printed for `answer`.
    private func gotLine(_ console: String, _ answer: String) -> String? {
        for line in console.replacingOccurrences(of: "\r", with: "").split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 3, words[0] == "LV-GOT", words[1] == answer { return String(words[2]) }
        }
        return nil
    }
}
