import Foundation
import Testing

/// Bad input gets a clear error and a non-zero exit, without booting anything.
@Suite(.enabled(if: LeakVisorProcess.executable != nil, "build leakvisor first (swift build)"))
struct BadInputTests {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-tests-\(getpid())")

    init() throws {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    @Test func missingKernel() throws {
        let r = try LeakVisorProcess.run(["run", "--kernel", "/nonexistent/vmlinux"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("/nonexistent/vmlinux: no such file"))
    }

    @Test func corruptKernel() throws {
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let r = try LeakVisorProcess.run(["run", "--kernel", try file("garbage", garbage)])
        #expect(r.status == 125)
        #expect(r.stderr.contains("not a bootable x86-64 Linux kernel"))
    }

    @Test func truncatedELFKernel() throws {
        let header: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 24)
        let r = try LeakVisorProcess.run(["run", "--kernel", try file("truncated", header)])
        #expect(r.status == 125)
        #expect(r.stderr.contains("kernel"))
    }

    @Test(.enabled(if: LeakVisorProcess.imageBuilt)) func initrdLargerThanMemory() throws {
        let big = scratch.appendingPathComponent("big.cpio")
        _ = FileManager.default.createFile(atPath: big.path, contents: nil)
        let handle = try FileHandle(forWritingTo: big)
        try handle.truncate(atOffset: 200 << 20)
        try handle.close()
        let r = try LeakVisorProcess.run(["run", "--memory", "160M", "--initrd", big.path,
                                          "--kernel", LeakVisorProcess.imageDirectory.appendingPathComponent("vmlinux").path])
        #expect(r.status == 125)
        #expect(r.stderr.contains("initrd of"))
        #expect(r.stderr.contains("does not fit"))
    }

    @Test(.enabled(if: LeakVisorProcess.imageBuilt)) func memoryTooSmall() throws {
        let r = try LeakVisorProcess.run(["run", "--memory", "64M"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("too small"))
    }

    @Test func badMemoryArgument() throws {
        let r = try LeakVisorProcess.run(["run", "--memory", "lots"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--memory"))
    }

    @Test(.enabled(if: LeakVisorProcess.imageBuilt)) func noKVMDevice() throws {
        let r = try LeakVisorProcess.run(["run", "--kvm-device", "/nonexistent/kvm"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("cannot open /nonexistent/kvm"))
        // Not the snapshot's fault: the cached snapshot stays (it was deleted once, and every
        // later run of the suite booted cold).
        #expect(!r.stderr.contains("replacing it"), "stderr: \(r.stderr)")
    }

    @Test func badAddSpec() throws {
        let r = try LeakVisorProcess.run(["run", "--add", "/nonexistent/file", "--", "true"])
        #expect(r.status == 125)
        #expect(r.stderr.contains("/nonexistent/file"))
    }

    @Test func scanOptionsAreChecked() throws {
        let withoutTracking = try LeakVisorProcess.run(["run", "--scan-every", "5s", "--", "true"])
        #expect(withoutTracking.status != 0)
        #expect(withoutTracking.stderr.contains("need --track"))
        let badDuration = try LeakVisorProcess.run(["run", "--track", "user", "--scan-every", "soon", "--", "true"])
        #expect(badDuration.status != 0)
        #expect(badDuration.stderr.contains("--scan-every"))
        let tooOften = try LeakVisorProcess.run(["run", "--track", "user", "--scan-every", "10ms", "--", "true"])
        #expect(tooOften.status != 0)
        #expect(tooOften.stderr.contains("at least 100ms"))
        let badCode = try LeakVisorProcess.run(["run", "--track", "user", "--error-exitcode", "0", "--", "true"])
        #expect(badCode.status != 0)
        #expect(badCode.stderr.contains("between 1 and 255"))
    }
}
