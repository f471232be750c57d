import Foundation
import Testing

/// Loads the test module lv_leak_kmod in one guest, blocks a shell inside it, and checks that
/// `leakvisor inspect` lists the module where the guest's sysfs says its text is, and that the
/// blocked task's kernel stack is unwound through the module's frames (its own ORC) and
/// symbolized from its kallsyms, with file:line from the host's `.ko`.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt
                    && FileManager.default.fileExists(atPath: TestKernelModule.hostCopy.path),
                "needs .build/debug/leakvisor and the default guest image with lv_leak_kmod.ko (scripts/setup.sh)"))
struct KernelModuleTests {
    @Test func inspectListsTheModuleAndUnwindsThroughIt() throws {
        let script = """
            lv-kmod-leaks load || exit 3
            lv-kmod-leaks block >/dev/null & BLOCKED=$!
            echo "LV-PID blocked $BLOCKED"
            sleep 1
            echo "LV-TEXT $(cat /sys/module/lv_leak_kmod/sections/.text)"
            echo "LV-CORE $(cat /sys/module/lv_leak_kmod/coresize)"
            echo LV-READY
            read answer
            lv-kmod-leaks unblock
            wait $BLOCKED
            echo "LV-DONE $answer $?"
            exit 0
            """
        let guest = try LiveGuest(["run", "--timeout", "3000", "--interactive", "--", "sh", "-c", script])
        let ready = guest.waitFor("LV-READY", timeout: 2900)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000))\n\(guest.monitorOutput.suffix(2000))")
        guard ready else { _ = guest.finish(timeout: 5); return }
        let console = guest.console.replacingOccurrences(of: "\r", with: "")
        let session = ["--session", "\(guest.pid)"]
        let text = try #require(value(console, "LV-TEXT").flatMap { UInt64($0.dropFirst(2), radix: 16) }, "\(console)")
        let coreSize = try #require(value(console, "LV-CORE").flatMap { UInt64($0) }, "\(console)")

        // modules: lv_leak_kmod, its text starting where sysfs says, within the core size; the
        // virtio modules /init loaded are there too.
        let modules = try inspect(["modules"] + session)
        let line = try #require(modules.split(separator: "\n").first { $0.hasPrefix("lv_leak_kmod ") }, "\(modules)")
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        #expect(fields.count == 4, "\(line)")
        #expect(fields.count > 1 && UInt64(fields[1]) == coreSize, "\(line) vs coresize \(coreSize)")
        #expect(fields.count > 2 && fields[2] == "live", "\(line)")
        let range = fields.last?.split(separator: "-").compactMap { UInt64($0.dropFirst(2), radix: 16) } ?? []
        #expect(range.count == 2 && range[0] == text, "\(line) vs .text 0x\(String(text, radix: 16))")
        #expect(range.count == 2 && range[1] > range[0] && range[1] - range[0] < coreSize, "\(line)")
        #expect(modules.contains("virtio_mmio "), "\(modules)")

        // stack: the shell blocked in the module's write handler. Innermost first: schedule, then
        // the module's frames with their source lines, then the write path to the syscall entry.
        let pid = try #require(value(console, "LV-PID blocked").flatMap { Int32($0) }, "\(console)")
        let stack = try inspect(["stack", "\(pid)"] + session)
        let kernel = (stack.components(separatedBy: "  in the kernel:").dropFirst().first ?? "")
            .split(separator: "\n").map(String.init).filter { $0.hasPrefix("    #") }
        let functions = kernel.compactMap { line -> String? in
            guard let at = line.range(of: " in ") else { return nil }
            return String(line[at.upperBound...].prefix { $0 != "+" && $0 != " " })
        }
        let path = ["schedule", "lv_kmod_block", "lv_kmod_write", "proc_reg_write", "vfs_write", "ksys_write",
                    "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
        #expect(functions.filter(path.contains) == path, "kernel frames in\n\(stack)")
        let blockLine = try markLine("block-wait")
        let block = kernel.first { $0.contains(" in lv_kmod_block+") }
        #expect(block?.contains("lv_leak_kmod.c:\(blockLine)") == true, "lv_kmod_block at line \(blockLine) in\n\(stack)")
        #expect(block?.hasSuffix("(lv_leak_kmod)") == true, "\(stack)")
        let write = kernel.first { $0.contains(" in lv_kmod_write+") }
        #expect(write?.contains("lv_leak_kmod.c:") == true && write?.hasSuffix("(lv_leak_kmod)") == true, "\(stack)")
        #expect(kernel.first { $0.contains(" in vfs_write+") }?.hasSuffix("(vmlinux)") == true, "\(stack)")

        // sym: the module frame's address resolves on its own too.
        if let address = block?.split(separator: " ").first(where: { $0.hasPrefix("0x") }) {
            let sym = try inspect(["sym", String(address)] + session)
            #expect(sym.contains("lv_kmod_block") && sym.contains("(lv_leak_kmod)"), "\(sym)")
        }

        guest.type("finished\n")
        let result = guest.finish(timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("LV-DONE finished"))
    }

    private func inspect(_ arguments: [String]) throws -> String {
        let r = try LeakVisorProcess.run(["inspect"] + arguments)
        #expect(r.status == 0, "inspect \(arguments): \(r.stderr)")
        return r.stdout
    }

    /// The value after `key ` on the console line that starts with it.
    private func value(_ console: String, _ key: String) -> String? {
        console.split(separator: "\n").first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) }
    }

    /// The line of an `LV-MARK` comment in the module's source.
    private func markLine(_ mark: String) throws -> Int {
        let source = try String(contentsOf: LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/default/kmod/lv_leak_kmod.c"),
                                encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        let index = try #require(lines.firstIndex { $0.contains("/* LV-MARK \(mark) */") })
        return index + 1
    }
}

/// The image's test module as the host keeps it (with DWARF).
enum TestKernelModule {
    static var hostCopy: URL { LeakVisorProcess.imageDirectory.appendingPathComponent("modules/lv_leak_kmod.ko") }
}
