import Foundation
import Testing

/// Boots the real guest once (no tracking) and checks `leakvisor inspect kernel-roots` against
/// what the guest and its kernel image say: `.data` and `.bss` sizes from the image's section
/// headers, one stack per task, one per-CPU unit per possible CPU, slab roots, and a probe scan
/// of objects from real guest memory whose classes are known (task_structs and kernel stacks
/// reachable, objects in free pages leaked).
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct KernelRootsTests {
    @Test func kernelRootsOfAnIdleGuest() throws {
        let script = """
            echo "LV-POSSIBLE $(cat /sys/devices/system/cpu/possible)"
            echo "LV-PROCS $(ls -d /proc/[0-9]* | wc -l)"
            echo LV-READY
            read answer
            echo "LV-DONE $answer"
            exit 0
            """
        let guest = try LiveGuest(["run", "--timeout", "2400", "--interactive", "--", "sh", "-c", script])
        let ready = guest.waitFor("LV-READY", timeout: 2000)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000))")
        guard ready else { _ = guest.finish(timeout: 5); return }
        let console = guest.console.replacingOccurrences(of: "\r", with: "")
        let r = try LeakVisorProcess.run(["inspect", "kernel-roots", "--json", "--session", "\(guest.pid)"])
        #expect(r.status == 0, "inspect kernel-roots: \(r.stderr)")
        let text = try LeakVisorProcess.run(["inspect", "kernel-roots", "--session", "\(guest.pid)"])
        #expect(text.stdout.contains("Probe scan"), "\(text.stdout)\(text.stderr)")
        guest.type("finished\n")
        let result = guest.finish(timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr)")

        let s = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        let bytes = s["bytes"] as? [String: Int] ?? [:]
        let problems = s["problems"] as? [String] ?? ["no problems field"]
        #expect(problems.isEmpty, "\(problems)")

        // .data and .bss are the image's sections of those names.
        if let readelf = HostTools.which("readelf") {
            let sections = try HostTools.run(readelf, ["-SW", LeakVisorProcess.imageDirectory.appendingPathComponent("vmlinux").path]).output
            func size(_ name: String) -> Int? {
                sections.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
                    .first { $0.contains(Substring(name)) }
                    .flatMap { f in f.firstIndex(of: Substring(name)).flatMap { f.count > $0 + 4 ? Int(f[$0 + 4], radix: 16) : nil } }
            }
            #expect(bytes["data"] == size(".data"), "\(bytes) vs\n\(sections)")
            #expect(bytes["bss"] == size(".bss"), "\(bytes) vs\n\(sections)")
        }
        #expect((bytes["data"] ?? 0) > 1 << 20 && (bytes["bss"] ?? 0) > 1 << 20)
        #expect((bytes["ro_after_init"] ?? 0) > 0 && (bytes["ro_after_init"] ?? 0) < 16 << 20)

        // One per-CPU unit per possible CPU ("0-1" → 2).
        let possible = console.split(separator: "\n").first { $0.hasPrefix("LV-POSSIBLE ") }.map { String($0.dropFirst(12)) } ?? ""
        let cpus = possible.split(separator: ",").reduce(0) { n, part in
            let ends = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            return n + (ends.count == 2 ? ends[1] - ends[0] + 1 : ends.count)
        }
        #expect(cpus >= 1 && s["perCPUUnits"] as? Int == cpus, "possible CPUs \(possible)")
        #expect((bytes["percpu"] ?? 0) >= cpus * 4096)

        // One stack per task on the task list, plus the idle tasks running on vCPUs (not on the list).
        let tasks = s["tasks"] as? Int ?? 0, stacks = s["stacks"] as? Int ?? 0
        // /proc also listed the ls, the wc and the subshell that counted (gone by the pause).
        let processes = (console.split(separator: "\n").first { $0.hasPrefix("LV-PROCS ") }.flatMap { Int($0.dropFirst(9)) } ?? 0) - 3
        #expect(processes > 10 && tasks >= processes, "tasks \(tasks), /proc has \(processes)")
        #expect(stacks >= tasks && stacks <= tasks + cpus, "stacks \(stacks), tasks \(tasks), CPUs \(cpus)")
        #expect((bytes["stack"] ?? 0) > 0 && (bytes["stack"] ?? 0) <= stacks * 16384)

        // Conservative roots: slab pages and kernel-owned pages, found by the struct page walk.
        let census = s["census"] as? [String: Int] ?? [:]
        #expect((bytes["slab"] ?? 0) > 1 << 20 && (census["slab"] ?? 0) * 4096 == bytes["slab"], "\(census) \(bytes)")
        #expect((census["free"] ?? 0) > 0 && (census["kernel"] ?? 0) > 0)
        let ram = s["guestRAMBytes"] as? Int ?? 0
        #expect((census["frames"] ?? 0) * 4096 <= ram && (census["frames"] ?? 0) * 4096 > ram * 9 / 10, "\(census) of \(ram) bytes")
        #expect((s["seconds"] as? Double ?? 99) < 30)

        // The probe scan over objects of real guest memory.
        #expect(s["probeComplete"] as? Bool == true)
        let probes = (s["probes"] as? [[String: Any]] ?? []).reduce(into: [String: [String: Any]]()) { $0[$1["name"] as? String ?? ""] = $1 }
        for name in ["task_struct", "kernel stack"] {
            let p = probes[name] ?? [:]
            #expect((p["objects"] as? Int ?? 0) >= processes && p["reachable"] as? Int == p["objects"] as? Int, "\(name): \(p)")
        }
        let free = probes["free page"] ?? [:]
        let freeObjects = free["objects"] as? Int ?? 0
        #expect(freeObjects >= 32 && (free["direct"] as? Int ?? 0) >= freeObjects * 9 / 10, "free page: \(free)")
        #expect(free["unclassified"] as? Int == 0 && free["indirect"] as? Int == 0)
    }
}
