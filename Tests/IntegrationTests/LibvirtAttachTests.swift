import Foundation
import Testing

/// `leakvisor attach DOMAIN` on a libvirt-managed QEMU domain (issue 16, item 3), against the real
/// libvirtd and QEMU of Debian's packages: the default image booted by QEMU under TCG, with shared
/// memfd RAM and its serial console on a socket of ours. lv-leak-tree --block allocates untracked
/// and blocks; the attach finds its blocks in glibc's heap; lv-leak-loop runs tracked; SIGINT
/// detaches (every byte put back) and the report is the one AttachTests expects of our own VMs.
/// Twice: a domain with libvirt's default private RAM (mirrored page by page) and one with shared
/// memfd RAM (mapped). Then an attach ends cleanly when the domain is suspended under it (left
/// paused) or destroyed under it, each with its report.
@Suite(.serialized)
struct LibvirtAttachTests {
    static let uri = "qemu:///system"

    static func virsh(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try HostTools.run("/usr/bin/virsh", ["-c", uri] + arguments)
    }

    /// A transient TCG domain of the default image running `script` (lvrun= on its command line).
    static func domainXML(name: String, directory: URL, console: String, script: String, sharedRAM: Bool) -> String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
        }
        return """
            <domain type='qemu'>
              <name>\(name)</name>
              <memory unit='MiB'>512</memory>
              <vcpu>\(sharedRAM ? 1 : 2)</vcpu>
              \(sharedRAM ? "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>" : "")
              <os>
                <type arch='x86_64' machine='pc'>hvm</type>
                <kernel>\(directory.path)/bzImage</kernel>
                <initrd>\(directory.path)/initramfs.cpio</initrd>
                <cmdline>console=ttyS0 quiet loglevel=3 panic=-1 nowatchdog lvrun=&quot;\(escaped(script))&quot;</cmdline>
              </os>
              <features><acpi/></features>
              <on_poweroff>destroy</on_poweroff>
              <devices>
                <serial type='unix'><source mode='connect' path='\(console)'/></serial>
                <memballoon model='none'/>
              </devices>
            </domain>
            """
    }

    /// libvirt's default: private RAM, mirrored page by page; two vCPUs; an attach ended by `virsh suspend`,
    /// one by kill -9 and recovered with `leakvisor detach DOMAIN`.
    @Test func attachToADomainWithPrivateRAM() throws {
        try attach(sharedRAM: false)
    }

    /// Shared memfd RAM, mapped directly; one vCPU; the attach ended by `virsh destroy`.
    @Test func attachToADomainWithSharedRAM() throws {
        try attach(sharedRAM: true)
    }

    func attach(sharedRAM: Bool) throws {
        #expect(LeakVisorProcess.imageBuilt, "the default image is not built (scripts/setup.sh)")
        // scripts/test.sh starts the daemons (scripts/libvirt-up.sh) before the suite: started from in here,
        // Foundation's Process never reaped the script that daemonized them and the test hung.
        let up = try HostTools.run("/usr/bin/virsh", ["-c", "qemu:///system", "version"])
        try #require(up.status == 0, "libvirtd does not answer on qemu:///system (run scripts/libvirt-up.sh): \(up.output)")
        // A slot for the domain: it is a guest like ours.
        let slot = GuestSlots.take(if: true, long: true)
        defer { slot.give() }

        let name = "lv-attach-test-\(getpid())-\(sharedRAM ? "shared" : "private")"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        defer { try? FileManager.default.removeItem(at: directory) }
        for file in ["bzImage", "initramfs.cpio"] {
            try FileManager.default.copyItem(at: LeakVisorProcess.imageDirectory.appendingPathComponent(file),
                                             to: directory.appendingPathComponent(file))
        }
        let report = directory.appendingPathComponent("report.json")
        let console = try ConsoleSocket(path: directory.appendingPathComponent("console.sock").path)
        let script = "lv-leak-tree --block & read answer; kill -USR1 $!; wait; lv-leak-loop 5 0; echo LV-LOOP-DONE; read answer; "
            + "echo LV-DONE $answer; read answer; lv-bench-malloc 3000; echo BENCH-DONE status=$?; read answer"
        let xml = directory.appendingPathComponent("domain.xml")
        try Self.domainXML(name: name, directory: directory, console: console.path, script: script, sharedRAM: sharedRAM).write(to: xml, atomically: true, encoding: .utf8)
        let created = try Self.virsh(["create", xml.path])
        try #require(created.status == 0, "virsh create: \(created.output)")
        defer { _ = try? Self.virsh(["destroy", name]) }
        let blocked = console.waitFor("lv-leak-tree blocked", timeout: 600)
        try #require(blocked, "lv-leak-tree never blocked: \(console.text.suffix(2000))")

        // A clear error first: an unknown domain.
        let unknown = try LeakVisorProcess.run(["attach", "lv-no-such-domain-\(getpid())"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no domain 'lv-no-such-domain"), "\(unknown.stderr)")

        let journal = directory.appendingPathComponent("attach.sqlite")
        let attach = try LiveGuest(["attach", name, "--json", "--report", report.path, "--journal", journal.path])
        let attached = waitFor({ attach.monitorOutput.contains("attached to libvirt domain") }, timeout: 300)
        try #require(attached, "attach: \(attach.monitorOutput.suffix(3000))")

        console.type("go\n")
        #expect(console.waitFor("LV-LOOP-DONE", timeout: 600), "\(console.text.suffix(2000))")
        attach.signal(SIGINT)
        let result = attach.finish(timeout: 300)
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        // The attach summary (--json): the blocks glibc had handed out before, the breakpoints armed.
        let summary = try JSONSerialization.jsonObject(with: Data((result.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any] ?? [:]
        let preexisting = summary["preexisting"] as? [String: Any] ?? [:]
        #expect((preexisting["blocks"] as? Int ?? 0) >= 17, "\(summary)")
        #expect((summary["arming"] as? [String: Any])?["sites"] as? Int ?? 0 > 0, "\(summary)")
        // Detach put back every byte: every page written into is as before.
        let detached = result.stderr.split(separator: "\n").first { $0.contains("detached: ") }.map(String.init) ?? ""
        let pages = detached.split(separator: ";").last?.split(separator: " ").compactMap { Int($0) } ?? []
        #expect(pages.count == 2 && pages[0] == pages[1] && pages[0] > 0, "\(result.stderr.suffix(3000))")
        #expect(result.stderr.contains("SUMMARY: LeakVisor:"), "\(result.stderr.suffix(2000))")
        try AttachTests().checkReport(report)
        // The soak journal holds the same final report, readable with no guest.
        let fromJournal = directory.appendingPathComponent("from-journal.json")
        let rebuilt = try LeakVisorProcess.run(["report", "--journal", journal.path, "--format", "json", "-o", fromJournal.path])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        try AttachTests().checkReport(fromJournal)
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any] ?? [:]
        let ram = sharedRAM ? "RAM through its shared mapping" : "its private RAM mirrored page by page"
        #expect((root["notes"] as? [String] ?? []).contains { $0.hasPrefix("backend: libvirt domain '\(name)'") && $0.contains(ram) },
                "\(root["notes"] ?? "")")

        // The guest goes on as before the attach.
        console.type("finished\n")
        #expect(console.waitFor("LV-DONE finished", timeout: 300), "\(console.text.suffix(2000))")

        if !sharedRAM {
            // Paused outside LeakVisor under an attach (virsh suspend): the attach detaches and ends, the
            // domain stays paused; resumed, it goes on.
            let paused = try LiveGuest(["attach", name])
            #expect(waitFor({ paused.monitorOutput.contains("attached to libvirt domain") }, timeout: 300), "\(paused.monitorOutput.suffix(3000))")
            let suspend = try Self.virsh(["suspend", name])
            #expect(suspend.status == 0, "\(suspend.output)")
            let pausedEnd = paused.finish(timeout: 120)
            #expect(pausedEnd.status == 0 && pausedEnd.stderr.contains("paused outside LeakVisor"), "\(pausedEnd.stderr.suffix(3000))")
            let state = try Self.virsh(["domstate", name])
            #expect(state.output.contains("paused"), "\(state.output)")
            #expect(try Self.virsh(["resume", name]).status == 0)

            // The monitor killed while attached (kill -9) leaves the domain stopped at its gdbstub
            // breakpoints and its int3s in place; `leakvisor detach DOMAIN` puts everything back from
            // the record the attach kept, and the program in the middle of its allocator calls goes on.
            let killed = try LiveGuest(["attach", name])
            #expect(waitFor({ killed.monitorOutput.contains("attached to libvirt domain") }, timeout: 300), "\(killed.monitorOutput.suffix(3000))")
            console.type("bench\n")
            #expect(console.waitFor("lv-bench-malloc ready", timeout: 120), "\(console.text.suffix(2000))")
            usleep(2_000_000)
            killed.signal(SIGKILL)
            _ = killed.finish(timeout: 30)
            let refused = try LeakVisorProcess.run(["attach", name])
            #expect(refused.status != 0 && refused.stderr.contains("leakvisor detach \(name)"), "\(refused.stderr)")
            let recovered = try LeakVisorProcess.run(["detach", name])
            #expect(recovered.status == 0 && recovered.stdout.contains("restored "), "\(recovered.stdout) \(recovered.stderr)")
            #expect(console.waitFor("BENCH-DONE status=0", timeout: 300), "\(console.text.suffix(2000))")
            #expect(try Self.virsh(["domstate", name]).output.contains("running"))
            let again = try LeakVisorProcess.run(["detach", name])
            #expect(again.status != 0 && again.stderr.contains("nothing to put back"), "\(again.stderr)")
        } else {
            // Another attach; the domain destroyed under it ends it with the report so far.
            let again = try LiveGuest(["attach", name])
            let reattached = waitFor({ again.monitorOutput.contains("attached to libvirt domain") }, timeout: 300)
            #expect(reattached, "\(again.monitorOutput.suffix(3000))")
            let destroyed = try Self.virsh(["destroy", name])
            #expect(destroyed.status == 0, "\(destroyed.output)")
            let ended = again.finish(timeout: 120)
            #expect(ended.status == 0 && ended.stderr.contains("the domain ended") && ended.stderr.contains("SUMMARY: LeakVisor:"),
                    "\(ended.stderr.suffix(3000))")
        }
    }

    func waitFor(_ condition: () -> Bool, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(200_000)
        }
        return condition()
    }
}
