import Foundation
import Testing

/// Boots the real guest once with `--track user` and lets guest processes attack the monitor
/// (issue 11, `lv-hostile` in LEAK-PROGRAMS.md): forged returns through the return trampoline
/// (an address at the top of the address space, and a size that wraps), a jump to the kernel's
/// syscall entry, malloc entered with the stack in a read-only file mapping and in a
/// copy-on-write one, an armed file replaced under the monitor, and a storm of reads and writes
/// of every MMIO device (the virtio disk's driver unbound first, so its registers
/// can be reached). Each attack must end the way it would on real hardware (the guest gains
/// nothing), the monitor must survive, the ledger must stay sane, the replaced file must be
/// tracked again, detach must restore exactly the guest's bytes, and the run must end with the
/// full report and the guest command's exit status.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct HostileGuestTests {
    /// The host copy of the guest program that is replaced while armed (the static lv-leak-basic).
    static var replacedHostCopy: URL {
        LeakVisorProcess.imageDirectory.appendingPathComponent("rootfs/usr/bin/lv-leak-basic")
    }

    @Test func hostileProcessesGainNothingAndTheRunEndsWithTheFullReport() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lv-hostile-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let report = scratch.appendingPathComponent("report.json")
        let disk = scratch.appendingPathComponent("storm.img")
        try Data(count: 1 << 20).write(to: disk)
        let arguments = ["run", "--track", "user", "--timeout", "2400", "--interactive", "--report", report.path,
                         "--disk", disk.path, "--add", Self.replacedHostCopy.path + ":/lv-replaced"]
        let script = """
            lv-hostile forge 0xfffffffffffff000 65536 3
            lv-hostile forge 0x7fffffff0000 0x100000000000000 257
            lv-hostile lstar
            lv-hostile rostack
            lv-hostile cow
            /lv-replaced
            cat /usr/bin/lv-leak-basic > /lv-replaced
            /lv-replaced
            for d in /sys/bus/platform/drivers/virtio-mmio/*:*; do echo "${d##*/}" > /sys/bus/platform/drivers/virtio-mmio/unbind; done
            lv-hostile mmio 0xd0000000 0x3000 20000
            lv-leak-basic
            echo LV-READY
            read answer
            echo LV-SUMS-BEGIN; md5sum /lv-replaced /usr/bin/lv-leak-basic; echo LV-SUMS-END
            echo "LV-DONE $answer"
            exit 42
            """
        let guest = try LiveGuest(arguments + ["--", "sh", "-c", script])
        let ready = guest.waitFor("LV-READY", timeout: 2000)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(4000))")
        guard ready else { _ = guest.finish(timeout: 5); return }

        // Detach: only the bytes still ours are put back (the replaced file's old pages are gone).
        let detach = try LeakVisorProcess.run(["detach", "--json", "--session", "\(guest.pid)"])
        #expect(detach.status == 0, "\(detach.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(detach.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(summary["bytesChangedByGuest"] as? Int == 0, "\(summary)")

        guest.type("finished\n")
        let result = guest.finish(timeout: 900)
        let console = result.stdout.replacingOccurrences(of: "\r", with: "")
        #expect(result.status == 42, "the guest command's status; stderr: \(result.stderr.suffix(4000))")
        #expect(console.contains("LV-DONE finished"), "\(console.suffix(4000))")

        // Each attack ended as on real hardware.
        func verdict(_ mode: String) -> String {
            console.split(separator: "\n").first { $0.hasPrefix("lv-hostile \(mode):") }.map(String.init) ?? "no verdict"
        }
        #expect(verdict("forge").contains("3 forged return(s) of 0xfffffffffffff000 (size 65536): 3 refused, 0 accepted"),
                "\(verdict("forge"))")
        #expect(console.contains("257 forged return(s) of 0x7fffffff0000 (size 72057594037927936): 257 refused, 0 accepted"),
                "\(console.suffix(6000))")
        #expect(verdict("lstar").contains("faulted like on real hardware (signal 11"), "\(verdict("lstar"))")
        #expect(verdict("rostack").contains("malloc faulted (signal 11") && verdict("rostack").hasSuffix("0 byte(s) of the file changed"),
                "\(verdict("rostack"))")
        #expect(verdict("cow").hasSuffix("0 byte(s) of the file changed"), "\(verdict("cow"))")
        // The control page, the virtio-mmio transport (its driver unbound) and a hole: all mapped.
        #expect(verdict("mmio").contains("access(es) to 0xd0000000+0x3000 (3 of 3 page(s) mapped)"), "\(verdict("mmio"))")
        #expect(!console.contains("lv-prog lv-hostile"), "a hostile mode failed to run: \(console.suffix(4000))")

        // After detach the guest reads the replaced file exactly as the host has it.
        let sums = console.components(separatedBy: "LV-SUMS-BEGIN\n").last?.components(separatedBy: "LV-SUMS-END").first ?? ""
        let host = try hostMD5(Self.replacedHostCopy)
        let guestSums = sums.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(guestSums == [host, host], "guest: \(sums), host: \(host)")

        // The report is complete and sane: every process, no block outside user space, and the
        // replaced program tracked both times it ran.
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any] ?? [:]
        let processes = root["processes"] as? [[String: Any]] ?? []
        let userTop: UInt64 = 0x7FFF_FFFF_F000
        for process in processes {
            for group in process["groups"] as? [[String: Any]] ?? [] {
                for block in group["details"] as? [[String: Any]] ?? [] {
                    let address = (block["address"] as? NSNumber)?.uint64Value ?? 0
                    let size = (block["size"] as? NSNumber)?.uint64Value ?? 0
                    #expect(address < userTop && size <= userTop - address,
                            "a block outside user space in \(process["executable"] ?? "?"): \(block)")
                }
            }
        }
        func leaks(_ process: [String: Any]) -> [Int] {
            (process["groups"] as? [[String: Any]] ?? []).filter { ($0["frames"] as? [[String: Any]])?.count ?? 0 > 1 }
                .filter { group in
                    let frames = group["frames"] as? [[String: Any]] ?? []
                    return AllocationTrackingTests.callerName(frames[1]).hasPrefix("lv_leak_")
                }
                .flatMap { AllocationTrackingTests.blockSizes($0) }.sorted()
        }
        let replaced = processes.filter { $0["executable"] as? String == "/lv-replaced" }
        #expect(replaced.count == 2 && replaced.allSatisfy { leaks($0) == [100, 200, 300] },
                "/lv-replaced before and after the replacement: \(replaced.map(leaks))")
        let basic = processes.filter { $0["executable"] as? String == "/usr/bin/lv-leak-basic" }
        #expect(basic.count == 1 && basic.allSatisfy { leaks($0) == [100, 200, 300] }, "\(basic.map(leaks))")
        #expect(processes.contains { $0["executable"] as? String == "/usr/bin/lv-hostile" }, "the hostile processes are in the report")
        #expect(result.stderr.contains("SUMMARY: LeakVisor:"), "\(result.stderr.suffix(4000))")
    }

    private func hostMD5(_ file: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/md5sum")
        p.arguments = [file.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text.split(separator: " ").first.map(String.init) ?? ""
    }
}
