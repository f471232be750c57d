import Foundation
import Testing

/// `leakvisor run --root`: the Debian disk `guest-images/debian-root/build.sh` makes with
/// debootstrap boots as the command's root (from the suite's snapshot), an `--add` file and
/// /leakvisor reach it, a tracked program on it is reported exactly as the same program in the
/// initramfs is (AllocationTrackingTests' expectations), the exit status comes back, and what the
/// command writes is in the image afterwards (synced and cleanly unmounted).
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"),
       .enabled(if: FileManager.default.fileExists(atPath: DebianRootDisk.directory.appendingPathComponent("root.img").path),
                "needs the Debian root disk guest-images/build/debian-root/root.img (guest-images/debian-root/build.sh, as root)"))
struct RootDiskTests {
    static let recipe = DebianRootDisk.directory

    @Test func aProgramOnADebootstrapDiskIsTrackedLikeOneInTheInitramfs() throws {
        // A copy, so that the run may write to it: the built image stays as the recipe made it.
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("lv-root-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let disk = work.appendingPathComponent("root.img").path
        #expect(try Self.run("/bin/cp", ["--sparse=always", Self.recipe.appendingPathComponent("root.img").path, disk]).status == 0)
        let added = work.appendingPathComponent("added.txt")
        try "LV-ADDED \(getpid())\n".write(to: added, atomically: true, encoding: .utf8)
        let report = work.appendingPathComponent("report.json")
        let tree = Self.recipe.appendingPathComponent("tree")
        let script = "cat /etc/debian_version; cat /root/added.txt; /usr/local/bin/lv-leak-basic-dynamic; "
            + "echo LV-WRITTEN >/root/lv-written.txt; exit 7"
        let result = try LeakVisorProcess.run(["run", "--root", disk, "--symbols", tree.path, "--track", "user", "--timeout", "1200",
                                               "--add", "\(added.path):/root/added.txt", "--report", report.path,
                                               "--", "sh", "-c", script])
        let console = result.stdout.replacingOccurrences(of: "\r", with: "")
        #expect(result.status == 7, "stdout: \(console.suffix(3000))\nstderr: \(result.stderr.suffix(3000))")

        // The disk's own files, and the --add file put on it.
        let version = try String(contentsOf: tree.appendingPathComponent("etc/debian_version"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(console.split(separator: "\n").contains { $0 == version }, "no Debian version \(version): \(console.suffix(2000))")
        #expect(console.contains("LV-ADDED \(getpid())"))

        // The program on the disk: exactly the blocks the same program has in the initramfs.
        let tracking = AllocationTrackingTests()
        let final = try tracking.processes(Data(contentsOf: report))
        let b = "lv-leak-basic.c"
        let basic = [AllocationTrackingTests.Block("malloc", 100, "lv_leak_malloc_100", line: try tracking.tagLine("basic-malloc-100", b)),
                     AllocationTrackingTests.Block("calloc", 200, "lv_leak_calloc_200", line: try tracking.tagLine("basic-calloc-200", b)),
                     AllocationTrackingTests.Block("realloc", 300, "lv_leak_realloc_300", line: try tracking.tagLine("basic-realloc-300", b))]
        let program = final["/usr/local/bin/lv-leak-basic-dynamic"]
        #expect(program != nil, "not in the report: \(final.keys.sorted())")
        #expect(program.map { AllocationTrackingTests.tally($0.blocks) } == AllocationTrackingTests.tally(basic), "\(program.map { "\($0.blocks)" } ?? "-")")
        #expect(program?.findings == [])
        #expect(result.stderr.contains("definitely lost: 600 byte(s) in 3 object(s)"))
        // The image's own tools (lv-payload entered the disk) are not reported; data files it maps are not noted.
        #expect(final.keys.allSatisfy { !$0.hasSuffix("/lv-payload") }, "\(final.keys.sorted())")
        #expect(!result.stderr.contains("ld.so.cache"), "\(result.stderr.suffix(2000))")

        // What the command wrote reached the image, and the file system was unmounted cleanly.
        let written = try Self.run("/usr/sbin/debugfs", ["-R", "cat /root/lv-written.txt", disk])
        #expect(written.output.contains("LV-WRITTEN"), "\(written.output)")
        let header = try Self.run("/usr/sbin/dumpe2fs", ["-h", disk])
        #expect(header.output.contains("Filesystem state:         clean"), "\(header.output.prefix(1500))")
    }

    /// Runs a host tool; its status and stdout.
    static func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Where `guest-images/debian-root/build.sh` puts the Debian root disk and its tree.
enum DebianRootDisk {
    static let directory = LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/build/debian-root")
}

/// A bad `--root` is a clear error with exit status 125, before any guest starts.
@Suite(.enabled(if: LeakVisorProcess.executable != nil, "needs .build/debug/leakvisor"))
struct RootDiskArgumentTests {
    @Test func aMissingOrUnusableRootDiskIsRefusedWithStatus125() throws {
        let directory = FileManager.default.temporaryDirectory.path
        for (argument, message) in [("/nonexistent/lv-root.img", "--root /nonexistent/lv-root.img: no such file"),
                                    (directory, "--root \(directory): is a directory, not a disk image"),
                                    (":ro", "--root needs a path (PATH or PATH:ro)")] {
            let result = try LeakVisorProcess.run(["run", "--root", argument, "--", "true"])
            #expect(result.status == 125, "\(argument): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(argument): \(result.stderr)")
        }
    }
}
