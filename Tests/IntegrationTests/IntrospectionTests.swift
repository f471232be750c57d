import Foundation
import Testing

/// Boots the real guest once, starts known programs in it, and checks `leakvisor inspect`
/// against what the guest itself reports: `ps`, `/proc/PID/maps`, and the known call chain of a
/// blocked program (static with and without frame pointers, and dynamic).
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct IntrospectionTests {
    static let variants = ["fp": "/usr/bin/lv-blocked-fp", "nofp": "/usr/bin/lv-blocked-nofp", "dyn": "/lv-blocked-dynamic"]

    @Test func inspectMatchesTheGuestsOwnView() throws {
        let dynamic = LeakVisorProcess.imageDirectory.appendingPathComponent("host-bin/lv-blocked-dynamic").path
        var script = ""
        for (tag, path) in Self.variants.sorted(by: { $0.key < $1.key }) {
            script += "\(path) >/dev/null & echo \"LV-PID \(tag) $!\"; PIDS=\"$PIDS $!\"\n"
        }
        script += "lv-compute 100000000000 >/dev/null & echo \"LV-PID busy $!\"; PIDS=\"$PIDS $!\"\n"
        script += """
            sleep 1
            echo LV-PS-BEGIN; ps -o pid,ppid,stat,comm; echo LV-PS-END
            for p in $PIDS; do echo "LV-MAPS-BEGIN $p"; cat /proc/$p/maps; echo "LV-MAPS-END $p"; done
            echo LV-READY
            read answer
            kill $PIDS
            echo "LV-DONE $answer"
            exit 0
            """
        let guest = try LiveGuest(["run", "--timeout", "2400", "--interactive",
                                   "--add", "\(dynamic):/lv-blocked-dynamic", "--", "sh", "-c", script])
        let ready = guest.waitFor("LV-READY", timeout: 2000)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000))")
        guard ready else { _ = guest.finish(timeout: 5); return }
        let console = guest.console.replacingOccurrences(of: "\r", with: "")
        let session = ["--session", "\(guest.pid)"]

        // Processes: every process the guest's ps listed (but ps itself) is there with the same
        // parent and name, and nothing else is, apart from kernel worker threads that come and go.
        let psLines = section(console, from: "LV-PS-BEGIN", to: "LV-PS-END").dropFirst()
        var guestView: [Int32: (ppid: Int32, stat: String, comm: String)] = [:]
        for line in psLines {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 4, let pid = Int32(f[0]), let ppid = Int32(f[1]), f[3] != "ps" else { continue }
            guestView[pid] = (ppid, String(f[2]), f[3...].joined(separator: " "))
        }
        #expect(guestView.count > 10, "ps output: \(psLines)")
        let ps = try inspect(["ps", "--json"] + session)
        let listed = try JSONSerialization.jsonObject(with: Data(ps.utf8)) as? [[String: Any]] ?? []
        var monitorView: [Int32: (ppid: Int32, name: String, state: String, kernel: Bool)] = [:]
        for p in listed {
            guard let pid = p["pid"] as? Int, let ppid = p["parentPID"] as? Int, let name = p["name"] as? String,
                  let state = p["state"] as? String, let kernel = p["isKernelThread"] as? Bool else { continue }
            monitorView[Int32(pid)] = (Int32(ppid), name, state, kernel)
        }
        for (pid, g) in guestView {
            guard let m = monitorView[pid] else {
                if !g.comm.hasPrefix("kworker/") { Issue.record("PID \(pid) (\(g.comm)) is missing from inspect ps") }
                continue
            }
            // The kernel shows a workqueue worker's current work after its name ("kworker/0:1-rcu").
            #expect(m.name == g.comm || (m.name.hasPrefix("kworker/") && g.comm.hasPrefix(m.name + "-")), "PID \(pid)")
            #expect(m.ppid == g.ppid, "PID \(pid)")
        }
        for (pid, m) in monitorView where guestView[pid] == nil && !m.name.hasPrefix("kworker/") && m.name != "ps" {
            Issue.record("inspect ps lists PID \(pid) (\(m.name)) that the guest's ps did not")
        }

        for (tag, path) in Self.variants {
            guard let pid = pidLine(console, tag: tag) else { Issue.record("no PID for \(tag)"); continue }
            #expect(monitorView[pid]?.state == "S", "\(tag) should be sleeping in read()")
            #expect(guestView[pid]?.stat.hasPrefix("S") == true)

            // Maps: the same lines as the guest's /proc/PID/maps, field by field.
            let expected = section(console, from: "LV-MAPS-BEGIN \(pid)", to: "LV-MAPS-END \(pid)").map(fields)
            let maps = try inspect(["maps", "\(pid)"] + session).split(separator: "\n").map { fields(String($0)) }
            #expect(!expected.isEmpty)
            #expect(maps == expected, "\(tag) maps\nguest:\n\(expected)\ninspect:\n\(maps)")

            // Stack: the known call chain, with the source lines of each call.
            let stack = try inspect(["stack", "\(pid)"] + session)
            let frames = stack.split(separator: "\n").map(String.init).filter { $0.hasPrefix("    #") }
            let chain = [("lv_inner", "inner-read"), ("lv_middle", "middle-call"), ("lv_outer", "outer-call"), ("main", "main-call")]
            var lastIndex = -1
            for (function, mark) in chain {
                let line = try markLine(mark)
                guard let index = frames.firstIndex(where: { $0.contains(" in \(function)") && $0.contains("lv-blocked.c:\(line)") }) else {
                    Issue.record("\(tag): no frame \(function) at lv-blocked.c:\(line) in\n\(stack)")
                    continue
                }
                #expect(index > lastIndex, "\(tag): \(function) out of order in\n\(stack)")
                lastIndex = index
            }
            #expect(stack.contains(path.hasPrefix("/lv") ? "(\(path))" : "(\(path))"), "module names in\n\(stack)")
            // The thread is blocked reading a pipe: its kernel stack (unwound with ORC) is the
            // read path, innermost first, down to the system-call entry.
            let kernelPart = stack.components(separatedBy: "  in the kernel:").dropFirst().first ?? ""
            let kernelFunctions = kernelPart.split(separator: "\n").compactMap { line -> String? in
                guard let at = line.range(of: " in ") else { return nil }
                return String(line[at.upperBound...].prefix { $0 != "+" && $0 != " " })
            }
            let readPath = ["schedule", "pipe_read", "vfs_read", "ksys_read", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
            #expect(kernelFunctions.filter(readPath.contains) == readPath, "\(tag) kernel frames in\n\(stack)")
            #expect(kernelFunctions.last == "entry_SYSCALL_64_after_hwframe", "\(tag) kernel frames in\n\(stack)")

            // sym: a user address of this process (the return address minus one lies in the call
            // instruction, so it gives the call's line), and a kernel address from its stack.
            if let inner = frames.first(where: { $0.contains(" in lv_inner") }),
               let text = inner.split(separator: " ").first(where: { $0.hasPrefix("0x") }),
               let returnAddress = UInt64(text.dropFirst(2), radix: 16) {
                let sym = try inspect(["sym", "0x" + String(returnAddress - 1, radix: 16), "--pid", "\(pid)"] + session)
                let line = try markLine("inner-read")
                #expect(sym.contains("lv_inner") && sym.contains("lv-blocked.c:\(line)"), "\(sym)")
            }
        }
        // A thread that computes: caught running in user mode on the vCPU, or in the kernel for a
        // timer interrupt; either way its user frame is in lv-compute's main.
        if let busy = pidLine(console, tag: "busy") {
            let stack = try inspect(["stack", "\(busy)"] + session)
            #expect(stack.contains(" in main") && stack.contains("lv-compute.c:"), "busy stack:\n\(stack)")
            #expect(stack.contains("running in user mode on vCPU ") || stack.contains("in the kernel"), "\(stack)")
        }
        let kernelFrame = try inspect(["stack", "\(pidLine(console, tag: "fp") ?? 1)"] + session)
            .split(separator: "\n").first { $0.contains("pipe_read") }
        if let address = kernelFrame?.split(separator: " ").first(where: { $0.hasPrefix("0x") }) {
            let sym = try inspect(["sym", String(address)] + session)
            #expect(sym.contains("pipe_read"))
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

    private func section(_ text: String, from: String, to: String) -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(where: { $0.hasPrefix(from) }),
              let end = lines[start...].firstIndex(where: { $0.hasPrefix(to) }) else { return [] }
        return Array(lines[(start + 1)..<end])
    }

    private func fields(_ line: String) -> [String] { line.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }

    private func pidLine(_ text: String, tag: String) -> Int32? {
        text.split(separator: "\n").first { $0.hasPrefix("LV-PID \(tag) ") }.flatMap { Int32($0.split(separator: " ")[2]) }
    }

    /// The line number of an `LV-MARK` comment in the guest program's source.
    private func markLine(_ mark: String) throws -> Int {
        let source = try String(contentsOf: LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/default/programs/lv-blocked.c"), encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let index = lines.firstIndex(where: { $0.contains("LV-MARK \(mark) ") || $0.hasSuffix("LV-MARK \(mark) */") }) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return index + 1
    }
}
