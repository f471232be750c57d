import Foundation
import Testing

/// Boots the real guest once with `--track kernel --scan-every 2s`. First a busybox workload
/// (files created and removed, pipes, fork/exec) and idle time over many kernel scans: no kernel
/// object may be reported. Then the test module lv_leak_kmod leaks its known set: the report must
/// hold exactly those leaks (count, bytes, allocator, allocating function and file:line, class)
/// and none of the module's non-leaks, nor anything else of the kernel's.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt
                    && FileManager.default.fileExists(atPath: TestKernelModule.hostCopy.path),
                "needs .build/debug/leakvisor and the default guest image with lv_leak_kmod.ko (scripts/setup.sh)"))
struct KernelLeakTests {
    static let workload = "for i in 1 2 3 4 5 6 7 8; do echo x$i > /tmp/f$i; cat /tmp/f$i | wc -c > /dev/null;"
        + " ls /proc > /dev/null; sh -c 'true'; rm /tmp/f$i; done"

    /// One expected group: allocator, cache, the tag of the allocating line, objects, allocated
    /// and requested bytes, class.
    struct Expected: Equatable, CustomStringConvertible {
        var allocator: String, cache: String?, function: String, line: Int, objects: Int, bytes: Int, requested: Int, reachability: String
        var description: String { "\(reachability) \(objects)x \(allocator)\(cache.map { "[\($0)]" } ?? "") \(function):\(line) \(bytes)/\(requested)" }
    }

    @Test func theModuleLeaksAreFoundExactlyAndTheIdleKernelHasNone() throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-kleak-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let script = """
            \(Self.workload)
            echo LV-IDLE
            read first
            \(Self.workload)
            lv-kmod-leaks leak || exit 3
            \(Self.workload)
            echo LV-LEAKED
            read second
            echo "LV-DONE $first $second"
            exit 0
            """
        let guest = try LiveGuest(["run", "--track", "kernel", "--scan-every", "2s", "--report", report.path, "--timeout", "3000",
                                   "--interactive", "--", "sh", "-c", script], long: true)
        let idle = guest.waitFor("LV-IDLE", timeout: 2900)
        #expect(idle, "the guest never became ready: \(guest.console.suffix(3000))\n\(guest.monitorOutput.suffix(3000))")
        guard idle else { _ = guest.finish(timeout: 5); return }

        // Idle plus workload: at least 8 scans and 25 s, then nothing may be reported.
        let started = Date()
        var kernel: [String: Any] = [:]
        repeat {
            Thread.sleep(forTimeInterval: 5)
            kernel = try Self.liveKernelReport(guest)
        } while ((kernel["scan"] as? [String: Any])?["scans"] as? Int ?? 0) < 8 || Date().timeIntervalSince(started) < 25
        let idleScans = (kernel["scan"] as? [String: Any])?["scans"] as? Int ?? 0
        #expect(idleScans >= 8 && (kernel["scan"] as? [String: Any])?["complete"] as? Bool == true, "\(kernel["scan"] ?? "no scan")")
        #expect((kernel["groups"] as? [Any])?.isEmpty == true, "false kernel leak reports while idle: \(Self.describe(kernel))")
        #expect((kernel["outstandingObjects"] as? Int ?? 0) > 100, "\(kernel["outstandingObjects"] ?? "?")")

        // The module's leaks: reported once they are old enough and unreferenced in 3 scans in a row.
        guest.type("idle-checked\n")
        #expect(guest.waitFor("LV-LEAKED", timeout: 600), "\(guest.console.suffix(3000))")
        var expected = try Self.expectedLeaks()
        let deadline = Date().addingTimeInterval(300)
        var found: [Expected] = []
        repeat {
            Thread.sleep(forTimeInterval: 5)
            kernel = try Self.liveKernelReport(guest)
            found = Self.groups(kernel)
        } while found.count < expected.count && Date() < deadline
        // The one known false negative: the vmalloc range is recycled all the time (task stacks),
        // and a stale copy of the area's address in a live object allocated before tracking keeps
        // it "reachable". The module keeps no reference of its own (addresses complemented), so
        // any referrer `inspect kernel-refs` shows other than the allocator's bookkeeping is such a
        // copy: the miss is accepted only with that evidence, which the test prints. A copy found in
        // a free slot counts: the object that held it during the scan was freed before the search.
        if !found.contains(where: { $0.function == "lv_leak_vmalloc" }), let vmalloc = Self.consoleAddress(guest.console, kind: "vmalloc") {
            let refs = try LeakVisorProcess.run(["inspect", "kernel-refs", "0x" + String(vmalloc, radix: 16), "--json", "--session", "\(guest.pid)"])
            let search = try JSONSerialization.jsonObject(with: Data(refs.stdout.utf8)) as? [String: Any] ?? [:]
            let stale = (search["referrers"] as? [[String: Any]] ?? []).filter { $0["bookkeeping"] as? Bool != true }
            print("[kernel leaks] the vmalloc leak 0x\(String(vmalloc, radix: 16)) stayed reachable; \(stale.count) stale word(s) hold its address: \(stale)")
            #expect(!stale.isEmpty, "the vmalloc leak was not reported and nothing references it: \(refs.stdout) \(refs.stderr)")
            if !stale.isEmpty { expected.removeAll { $0.function == "lv_leak_vmalloc" } }
        }
        #expect(found == expected, "live report: \(Self.describe(kernel))")

        guest.type("leaks-checked\n")
        let result = guest.finish(timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-DONE idle-checked leaks-checked"), "\(result.stdout.suffix(2000))")
        // The final report: the same leaks, as JSON and as text.
        let final = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any] ?? [:]
        let finalKernel = final["kernel"] as? [String: Any] ?? [:]
        let schema = LeakVisorProcess.packageRoot.appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        #expect(try HostTools.schemaErrors(report.path, schema: schema) == "")
        // The module's sites are among the top outstanding ones, each with its class.
        let sites = (finalKernel["outstandingSites"] as? [[String: Any]] ?? []).compactMap { ($0["callSite"] as? [String: Any])?["function"] as? String }
        #expect(sites.contains("lv_leak_vmalloc"), "\(sites)")
        #expect(Self.groups(finalKernel) == expected, "final report: \(Self.describe(finalKernel))")
        let classes = finalKernel["classes"] as? [String: Any] ?? [:]
        let vmallocFound = expected.contains { $0.function == "lv_leak_vmalloc" }
        #expect((classes["definitelyLost"] as? [String: Any])?["blocks"] as? Int == (vmallocFound ? 5 : 4), "\(classes)")
        #expect((classes["indirectlyLost"] as? [String: Any])?["blocks"] as? Int == 3, "\(classes)")
        #expect(result.stderr.contains("Direct leak of 2048 byte(s) in 1 kernel object(s) (1200 requested) allocated by kmalloc"),
                "\(result.stderr.suffix(4000))")
        let cacheLine = expected.first { $0.function == "lv_leak_cache" }?.line ?? 0
        #expect(result.stderr.contains("lv_leak_kmod.c:\(cacheLine) [lv_leak_kmod]"), "\(result.stderr.suffix(4000))")
        #expect(result.stderr.contains("==kernel== KERNEL LEAK SUMMARY: definitely lost: "), "\(result.stderr.suffix(3000))")
    }

    /// The address `lv-kmod-leaks` printed for an object of `kind` (`lv-kmod KIND 0xADDRESS SIZE`).
    static func consoleAddress(_ console: String, kind: String) -> UInt64? {
        let line = console.replacingOccurrences(of: "\r", with: "").split(separator: "\n").first { $0.hasPrefix("lv-kmod \(kind) 0x") }
        return line.flatMap { $0.split(separator: " ").dropFirst(2).first }.flatMap { UInt64($0.dropFirst(2), radix: 16) }
    }

    /// The kernel section of `leakvisor report --json` from the running monitor (which scans first).
    static func liveKernelReport(_ guest: LiveGuest) throws -> [String: Any] {
        let live = try LeakVisorProcess.run(["report", "--json", "--session", "\(guest.pid)"])
        #expect(live.status == 0, "\(live.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(live.stdout.utf8)) as? [String: Any] ?? [:]
        return json["kernel"] as? [String: Any] ?? [:]
    }

    /// The groups of a kernel section, in the form of `Expected`, sorted.
    static func groups(_ kernel: [String: Any]) -> [Expected] {
        ((kernel["groups"] as? [[String: Any]]) ?? []).map { g in
            let site = g["callSite"] as? [String: Any] ?? [:]
            return Expected(allocator: g["allocator"] as? String ?? "?", cache: g["cache"] as? String,
                            function: site["function"] as? String ?? "?",
                            line: (site["file"] as? String ?? "").hasSuffix("lv_leak_kmod.c") ? site["line"] as? Int ?? 0 : 0,
                            objects: g["objects"] as? Int ?? 0, bytes: g["bytes"] as? Int ?? 0, requested: g["requestedBytes"] as? Int ?? 0,
                            reachability: g["reachability"] as? String ?? "?")
        }.sorted { $0.description < $1.description }
    }

    /// What lv_leak_kmod leaks in one run (guest-images/default/kmod/KMOD-LEAKS.md), its lines
    /// looked up by their `LV-KALLOC` tags in the source.
    static func expectedLeaks() throws -> [Expected] {
        let source = try String(contentsOf: LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/default/kmod/lv_leak_kmod.c"),
                                encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        func line(_ tag: String) -> Int { (lines.firstIndex { $0.contains("/* LV-KALLOC \(tag) */") } ?? -1) + 1 }
        return [
            Expected(allocator: "kmalloc", cache: nil, function: "lv_leak_kmalloc", line: line("kmalloc"), objects: 1, bytes: 2048,
                     requested: 1200, reachability: "definitely lost"),
            Expected(allocator: "kmalloc", cache: nil, function: "lv_leak_kzalloc", line: line("kzalloc"), objects: 1, bytes: 1024,
                     requested: 712, reachability: "definitely lost"),
            Expected(allocator: "kmem_cache_alloc", cache: "lv_kmod_cache", function: "lv_leak_cache", line: line("cache"), objects: 1,
                     bytes: 352, requested: 344, reachability: "definitely lost"),
            Expected(allocator: "vmalloc", cache: nil, function: "lv_leak_vmalloc", line: line("vmalloc"), objects: 1, bytes: 20480,
                     requested: 20000, reachability: "definitely lost"),
            Expected(allocator: "kmalloc", cache: nil, function: "lv_leak_chain", line: line("chain"), objects: 1, bytes: 96,
                     requested: 88, reachability: "definitely lost"),
            Expected(allocator: "kmalloc", cache: nil, function: "lv_leak_chain", line: line("chain"), objects: 3, bytes: 288,
                     requested: 264, reachability: "indirectly lost"),
        ].sorted { $0.description < $1.description }
    }

    static func describe(_ kernel: [String: Any]) -> String {
        let groups = ((kernel["groups"] as? [[String: Any]]) ?? []).prefix(20).map { g -> String in
            let site = g["callSite"] as? [String: Any] ?? [:]
            let stack = ((g["frames"] as? [[String: Any]]) ?? []).prefix(6).map { "\($0["function"] ?? "?")" }.joined(separator: " < ")
            return "\(g["reachability"] ?? "?") \(g["objects"] ?? "?")x\(g["bytes"] ?? "?") \(g["allocator"] ?? "?")"
                + " \(g["cache"] ?? "") at \(site["function"] ?? "?") \(site["file"] ?? "")\(site["line"].map { ":\($0)" } ?? "") [\(stack)]"
        }
        return "scan \(kernel["scan"] ?? "none"); classes \(kernel["classes"] ?? "?"); held \(kernel["held"] ?? "?");"
            + " groups:\n" + groups.joined(separator: "\n")
    }
}
