import AllocationTracing
import Control
import Foundation
import GuestMemory
import Introspection
import LeakJournal
import Libvirt
import Monitor
import QEMUBackend

/// `leakvisor attach --connect URI DOMAIN`: tracks a libvirt-managed QEMU domain from outside, in
/// the foreground. Guest RAM through the QEMU process's shared RAM mapping, vCPUs and breakpoints
/// through a gdbstub started in that QEMU through libvirt; the tracker, ledger and scanner are the
/// same as for our own VMs. Ends on SIGINT/SIGTERM or `--duration` (detach first: every byte put
/// back), or when the domain ends; then prints the report and writes `--report`.
struct LibvirtAttach {
    var uri: String
    var domainName: String
    var track: AttachTrack
    var reportPath: String?
    var vmlinux: String?
    var symbolDirectories: [String]
    var scanInterval: Double?
    var stackDepth: Int
    var duration: Double?
    /// The soak journal's path (nil: none).
    var journalPath: String?
    var json: Bool

    static let output = SessionOutput(line: { MonitorOutput.say($0) }, text: { MonitorOutput.write($0) })

    enum Failure: Error, CustomStringConvertible {
        case notRunning(String, LibvirtDomain.State)
        case unrecovered(String)
        case noRecord(String)
        case noKernelImage
        case unknownKernel
        case monitor(String)
        var description: String {
            switch self {
            case .notRunning(let name, let state): return "domain '\(name)' is \(state), not running"
            case .noKernelImage: return "no guest kernel image with symbols: give --vmlinux (the default image's vmlinux was not found)"
            case .unknownKernel:
                return "the guest's #BP handler does not fit the kernel image given (--vmlinux must be the image of the kernel the domain runs)"
            case .monitor(let output): return "the QEMU monitor refused to start a gdbstub: \(output.prefix(300))"
            case .unrecovered(let name):
                return "an earlier attach to '\(name)' did not detach (its monitor was killed?): `leakvisor detach \(name)` puts back what it changed first"
            case .noRecord(let name): return "no record of an attach to '\(name)' that did not detach: nothing to put back"
            }
        }
    }

    func run() throws -> Int32 {
        let started = ContinuousClock.now
        let connection = try LibvirtConnection(uri: uri)
        let domain = try connection.domain(named: domainName)
        let processID = Result { try domain.qemuProcessID() }
        if let record = AttachRecord.load(domain: domainName) {
            guard record.qemuProcessID != (try? processID.get()) else { throw Failure.unrecovered(domainName) }
            AttachRecord.remove(domain: domainName)   // about an earlier run of the domain
        }
        let state = try domain.state()
        guard state == .running else { throw Failure.notRunning(domainName, state) }
        guard let vmlinux = vmlinux ?? GuestImageLocator.defaultDirectory()?.appendingPathComponent("vmlinux").path,
              FileManager.default.fileExists(atPath: vmlinux) else { throw Failure.noKernelImage }
        let pid = try processID.get()

        let (guest, port) = try Self.openGuest(domain, qemuProcessID: pid)
        defer { _ = try? domain.humanMonitorCommand("gdbserver none") }
        let mirror = guest.mirror
        var released = false
        defer { if !released { guest.release() } }

        var options = TrackingOptions()
        options.includeOperators = track.includesOperators
        options.jsonPath = reportPath
        options.scanInterval = scanInterval
        options.stackDepth = stackDepth
        options.journalPath = journalPath
        options.runIdentity = RunIdentity(leakvisorVersion: JournalLocation.leakvisorVersion, commandLine: CommandLine.arguments,
                                          kernel: vmlinux, image: "libvirt \(uri) domain \(domainName)")
        let backendNote = "backend: libvirt domain '\(domainName)' at \(uri), QEMU process \(pid); "
            + (mirror == nil ? "RAM through its shared mapping" : "its private RAM mirrored page by page through /proc/PID/mem")
            + ", vCPUs and breakpoints through its gdbstub; no dirty-page log (docs/attach.md)"
        options.reportFilter = { report in
            var report = report
            report.notes.append(backendNote)
            return report
        }
        let files = GuestSymbolFiles.forCommandLine(directories: symbolDirectories)
        let tracking = try TrackingSession.prepare(vmlinux: vmlinux, kernelSymbolFile: nil, files: files, options: options, output: Self.output)
        guard let entry = tracking.kernel.systemCallEntry(breakpointHandler: try guest.breakpointHandler()) else { throw Failure.unknownKernel }
        guest.setSystemCallEntry(entry)
        let session = TrackingSession(tracking: tracking, guest: guest, files: files, options: options, output: Self.output)
        let summary = try session.attach(kernelSeconds: 0, reattached: false)
        // While attached, what to put back if this monitor dies (`leakvisor detach DOMAIN`).
        let recorder = AttachRecorder(uri: uri, domain: domainName, qemuProcessID: pid, gdbPort: port, vmlinux: vmlinux,
                                      tracker: session.tracker, guest: guest)
        recorder.save()
        recorder.journal()
        guest.setAfterStop { kernelHook in recorder.save(ifOlderThan: kernelHook ? 0 : 1) }
        defer {
            session.tracker.setJournal(nil)
            AttachRecord.remove(domain: domainName)
        }
        let attachSeconds = (ContinuousClock.now - started) / .seconds(1)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            AttachCommand.describe(summary)
        }
        fflush(nil)   // every output stream: the summary reaches a pipe before the guest goes on
        MonitorOutput.say(String(format: "attached to libvirt domain '%@' in %.1f s (%d vCPU(s)); SIGINT or SIGTERM detaches and reports",
                                 domainName, attachSeconds, guest.vcpuCount))

        let signals = SignalForwarding(stop: { guest.requestStop() }, report: { session.printReport(final: false) })
        defer { signals.cancel() }
        if let duration { DispatchQueue.global().asyncAfter(deadline: .now() + duration) { guest.requestStop() } }

        let ending = guest.serve()
        switch ending {
        case .stopRequested:
            let detached = try session.detach()
            MonitorOutput.say("detached: \(detached.bytesRestored) byte(s) and \(detached.returnAddressesRestored) return address(es) put back; "
                              + "\(detached.pagesIdentical) of \(detached.pagesCompared) page(s) written into are as before")
            guest.release()
            released = true
        case .pausedOutside:
            // Someone else stopped the guest (virsh suspend, a migration): detach and leave it stopped.
            let detached = try session.detach()
            MonitorOutput.say("the domain was paused outside LeakVisor (virsh suspend, a migration): detached "
                              + "(\(detached.bytesRestored) byte(s) put back) and left paused; reporting what was seen")
            guest.release(resume: false)
            released = true
        case .ended(let why):
            MonitorOutput.say("the domain ended: \(why); reporting what was seen")
            released = true
        }
        let stats = guest.statistics.withLock { $0 }
        MonitorOutput.say("QEMU backend: \(stats.stops) stop(s), \(stats.userTrapsHandled) user trap(s), \(stats.kernelHooksHandled) kernel hook(s), "
                          + "\(stats.gatesPassedByEmulation + stats.gatesPassedByStepping) exception(s) passed to the guest, "
                          + "\(stats.pagesRewritten) page(s) rewritten through the gdbstub; "
                          + String(format: "%.0f µs per stop handled", stats.stops > 0 ? stats.handlingSeconds / Double(stats.stops) * 1e6 : 0))
        let (written, _) = session.finish()
        return written ? 0 : 1
    }

    /// The domain's guest through the QEMU backend: its RAM, a gdbstub started on a free local port
    /// (the caller stops it with `gdbserver none`), the IDT; the RAM checked against the stub.
    /// With `existingPort`, the gdbstub an earlier monitor started is used if it still listens
    /// there (QEMU 7.2 cannot replace a gdbstub: "duplicate yank instance").
    static func openGuest(_ domain: LibvirtDomain, qemuProcessID: Int32,
                          existingPort: UInt16? = nil) throws -> (guest: QEMUGuest, port: UInt16) {
        let (memory, mirror) = try QEMUDomainMemory.map(domain, qemuProcessID: qemuProcessID)
        let idtBase = try QEMUDomainMemory.idtBase(domain)
        if let existingPort, let guest = try? QEMUGuest(memory: memory, gdbPort: existingPort, idtBase: idtBase, mirror: mirror) {
            try guest.checkRAM()
            return (guest, existingPort)
        }
        let port = try freeLocalPort()
        let answer = try domain.humanMonitorCommand("gdbserver tcp:127.0.0.1:\(port)")
        guard answer.contains("Waiting for gdb connection") else { throw Failure.monitor(answer) }
        let guest = try QEMUGuest(memory: memory, gdbPort: port, idtBase: idtBase, mirror: mirror)
        try guest.checkRAM()
        return (guest, port)
    }

    /// A TCP port on the loopback interface that nothing listens on now.
    static func freeLocalPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EADDRINUSE) }
        return UInt16(bigEndian: address.sin_port)
    }
}
