import Foundation
import Testing

/// Runs the real default guest image (Debian's cloud kernel + busybox initramfs), from the
/// suite's snapshot and booted cold, and checks what the guest really printed and the exit status
/// it reported. One run covers several cases.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct GuestBootTests {
    @Test func bootsRunsCommandsAndReportsStatus() throws {
        let dynamicProgram = LeakVisorProcess.imageDirectory.appendingPathComponent("host-bin/lv-hello-dynamic").path
        // A 1 MiB raw disk: sector 0 holds a marker for the guest to read, sector 1 receives one.
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-disk-\(getpid()).img")
        var image = [UInt8](repeating: 0, count: 1 << 20)
        image.replaceSubrange(0..<17, with: Array("host-disk-marker\n".utf8))
        try Data(image).write(to: disk)
        defer { try? FileManager.default.removeItem(at: disk) }
        let script = """
            echo "guest-kernel=$(uname -r)"
            echo "guest-cpus=$(grep -c ^processor /proc/cpuinfo)"
            lv-hello static-arg
            /lv-hello-dynamic 'two words' "it's"
            echo "pid1=$(cat /proc/1/comm)"
            echo "vda-sectors=$(cat /sys/block/vda/size)"
            head -c 16 /dev/vda; echo
            echo guest-disk-marker | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null
            exit 7
            """
        let r = try LeakVisorProcess.run(["run", "--timeout", "1500",
                                          "--add", "\(dynamicProgram):/lv-hello-dynamic",
                                          "--disk", disk.path,
                                          "--", "sh", "-c", script])
        let kernelRelease = try String(contentsOf: LeakVisorProcess.imageDirectory.appendingPathComponent("version"), encoding: .utf8)
        #expect(r.status == 7, "stderr: \(r.stderr)\nstdout tail: \(r.stdout.suffix(2000))")
        #expect(r.stdout.contains("guest-kernel=6.1."))
        #expect(kernelRelease.contains("6.1."))
        #expect(r.stdout.contains("guest-cpus=2"))   // the default: 2 vCPUs
        #expect(r.stdout.contains("hello from guest user space"))
        #expect(r.stdout.contains("static-arg"))
        #expect(r.stdout.contains("two words"))
        #expect(r.stdout.contains("it's"))
        #expect(r.stdout.contains("pid1=init"))
        // The virtio block device: size, a read of what the host wrote, a write the host sees.
        #expect(r.stdout.contains("vda-sectors=2048"))
        #expect(r.stdout.contains("host-disk-marker"))
        let after = try Data(contentsOf: disk)
        #expect(String(decoding: after[512..<530], as: UTF8.self) == "guest-disk-marker\n")
        // The console stays quiet: no kernel boot log unless --verbose-kernel.
        #expect(!r.stdout.contains("Linux version"))
        // The run started from the suite's snapshot (scripts/test.sh makes it with one cold boot,
        // whose plain progress lines it checks), or made one: the disk was probed after that point.
        #expect(r.stderr.contains("snapshot: restored ") || r.stderr.contains("snapshot: saved "), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("\r"), "no in-place updates off a terminal")
    }

    /// The cold boot without a snapshot cache of its own: in a temporary directory, so it saves one.
    static let terminalBoot = ["run", "--cpus", "2", "--timeout", "1500", "--",
                               "sh", "-c", "echo online=$(cat /sys/devices/system/cpu/online); exit 0"]

    /// The file named by `variable`, if scripts/test.sh set it.
    static func suiteLog(_ variable: String) -> String? {
        guard let path = ProcessInfo.processInfo.environment[variable], let data = FileManager.default.contents(atPath: path) else {
            return nil
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The suite's one cold boot (scripts/test.sh runs it while the tests and fuzzers build;
    /// `LEAKVISOR_SUITE_TERMINAL_LOG` is the terminal's transcript): on a terminal, as a user would
    /// run it, with two vCPUs, which the guest finds through the ACPI MADT and brings up. The boot
    /// progress is one status line updated in place, cleared before the guest's console writes;
    /// the stages come in order, and the snapshot every later run restores is saved where the
    /// guest waits for its work. Without that transcript the test boots itself, into a temporary
    /// snapshot cache. (Off a terminal, one plain line per stage: `BootProgressTests`.)
    @Test func bootsColdOnATerminalWithTwoVCPUsAndSavesTheSnapshot() throws {
        let terminal: String
        if let transcript = Self.suiteLog("LEAKVISOR_SUITE_TERMINAL_LOG") {
            terminal = transcript
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-boot-\(getpid())")
            defer { try? FileManager.default.removeItem(at: dir) }
            let r = try LeakVisorProcess.runOnTerminal(Self.terminalBoot, environment: ["LEAKVISOR_SNAPSHOT_DIR": dir.path])
            #expect(r.status == 0, "terminal tail: \(r.stdout.suffix(3000))")
            terminal = r.stdout
        }
        let lines = terminal.replacingOccurrences(of: "\r", with: "\n")
        let stages = ["boot: loading the kernel and initramfs", "boot: kernel starting", "boot: kernel running, ",
                      "leakvisor: boot: user space reached after ", "leakvisor: snapshot: saved ", "online=0-1"]
        let positions = stages.map { lines.range(of: $0)?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil }, "transcript: \(lines.prefix(3000))")
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "transcript: \(lines.prefix(3000))")
        #expect(terminal.contains("online=0-1"))
        let clearLine = "\r\u{1B}[2K"
        // At least one update in place while the kernel ran (a cold boot takes many seconds).
        #expect(terminal.contains("boot: kernel running, "), "terminal head: \(terminal.prefix(3000))")
        #expect(terminal.contains("boot: user space reached after "))
        // Every status line shown was cleared before anything else was written after it.
        if let lastStatus = terminal.range(of: "boot: kernel running, ", options: .backwards),
           let guestLine = terminal.range(of: "online=0-1") {
            #expect(lastStatus.upperBound < guestLine.lowerBound)
            #expect(terminal[lastStatus.upperBound..<guestLine.lowerBound].contains(clearLine),
                    "the status line was not cleared before the guest's output")
        }
    }
}
