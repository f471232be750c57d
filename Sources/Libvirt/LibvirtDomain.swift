import CLibvirt
import Foundation

/// A libvirt domain: its state, pause and resume, its QEMU monitor and its QEMU process.
// SAFETY: @unchecked Sendable: libvirt domain objects may be used from several threads; the
// pointer never changes and is freed once, in deinit.
public final class LibvirtDomain: @unchecked Sendable {
    let pointer: virDomainPtr
    public let connection: LibvirtConnection
    public let name: String

    init(_ pointer: virDomainPtr, connection: LibvirtConnection, name: String) {
        self.pointer = pointer
        self.connection = connection
        self.name = name
    }

    deinit { virDomainFree(pointer) }

    /// What libvirt says the domain is doing.
    public enum State: Equatable, Sendable, CustomStringConvertible {
        case running, paused, shutOff, shuttingDown, crashed, other(Int32)
        public var description: String {
            switch self {
            case .running: return "running"
            case .paused: return "paused"
            case .shutOff: return "shut off"
            case .shuttingDown: return "shutting down"
            case .crashed: return "crashed"
            case .other(let raw): return "state \(raw)"
            }
        }
    }

    public func state() throws(LibvirtError) -> State {
        var state: Int32 = 0, reason: Int32 = 0
        guard virDomainGetState(pointer, &state, &reason, 0) == 0 else { throw .call("virDomainGetState", message: LibvirtConnection.lastError()) }
        switch UInt32(state) {
        case VIR_DOMAIN_RUNNING.rawValue: return .running
        case VIR_DOMAIN_PAUSED.rawValue: return .paused
        case VIR_DOMAIN_SHUTOFF.rawValue: return .shutOff
        case VIR_DOMAIN_SHUTDOWN.rawValue: return .shuttingDown
        case VIR_DOMAIN_CRASHED.rawValue: return .crashed
        default: return .other(state)
        }
    }

    /// Memory given to the guest, in bytes, and its vCPU count.
    public func info() throws(LibvirtError) -> (memoryBytes: UInt64, vcpus: Int) {
        var info = virDomainInfo()
        guard virDomainGetInfo(pointer, &info) == 0 else { throw .call("virDomainGetInfo", message: LibvirtConnection.lastError()) }
        return (UInt64(info.memory) * 1024, Int(info.nrVirtCpu))
    }

    /// The live domain XML.
    public func xml() throws(LibvirtError) -> String {
        guard let text = virDomainGetXMLDesc(pointer, 0) else { throw .call("virDomainGetXMLDesc", message: LibvirtConnection.lastError()) }
        defer { free(text) }
        return String(cString: text)
    }

    public func suspend() throws(LibvirtError) {
        guard virDomainSuspend(pointer) == 0 else { throw .call("virDomainSuspend", message: LibvirtConnection.lastError()) }
    }

    public func resume() throws(LibvirtError) {
        guard virDomainResume(pointer) == 0 else { throw .call("virDomainResume", message: LibvirtConnection.lastError()) }
    }

    /// Runs a human-monitor (HMP) command in the domain's QEMU through libvirt and returns its output.
    /// (libvirt marks the domain as tainted by a custom monitor command.)
    public func humanMonitorCommand(_ command: String) throws(LibvirtError) -> String {
        var result: UnsafeMutablePointer<CChar>?
        let flags = UInt32(VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP.rawValue)
        guard virDomainQemuMonitorCommand(pointer, command, &result, flags) == 0, let result else {
            throw .call("QEMU monitor command '\(command)'", message: LibvirtConnection.lastError())
        }
        defer { free(result) }
        return String(cString: result)
    }

    /// The process id of the domain's QEMU: from the pid file the QEMU driver keeps, checked
    /// against the process's command line (`-name guest=NAME`).
    public func qemuProcessID() throws(LibvirtError) -> Int32 {
        var candidates = ["/run/libvirt/qemu/\(name).pid"]
        if let runtime = getenv("XDG_RUNTIME_DIR") { candidates.append(String(cString: runtime) + "/libvirt/qemu/run/\(name).pid") }
        for path in candidates {
            guard let text = Self.readSmallFile(path), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
                continue
            }
            guard let cmdline = Self.readSmallFile("/proc/\(pid)/cmdline") else { continue }
            let arguments = cmdline.split(separator: "\0").map(String.init)
            if arguments.contains(where: { $0.hasPrefix("guest=\(name),") || $0 == "guest=\(name)" }) { return pid }
        }
        throw .noProcess(domain: name, why: "no pid file of a live QEMU for it in \(candidates.joined(separator: " or "))")
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while total < bytes.count {
            let n = bytes[total...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: bytes.prefix(total), as: UTF8.self)
    }
}
