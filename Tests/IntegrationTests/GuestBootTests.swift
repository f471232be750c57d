import Foundation
import Testing

/// Boots the real default guest image (Debian's cloud kernel + busybox initramfs) once and checks
/// what the guest really printed and the exit status it reported. One boot covers several cases
/// because a boot takes minutes on a host whose guest kernel is emulated.
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
    }

    /// Two vCPUs: the guest finds both through the ACPI MADT and brings the second one up.
    @Test func bootsTwoVCPUs() throws {
        let r = try LeakVisorProcess.run(["run", "--cpus", "2", "--timeout", "1500", "--",
                                          "sh", "-c", "echo online=$(cat /sys/devices/system/cpu/online); exit 0"])
        #expect(r.status == 0, "stderr: \(r.stderr)\nstdout tail: \(r.stdout.suffix(2000))")
        #expect(r.stdout.contains("online=0-1"))
    }
}
