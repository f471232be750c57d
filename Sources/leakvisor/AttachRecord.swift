import AllocationTracing
import Foundation
import LeakAnalysis

/// What a libvirt attach has changed in its domain, kept on disk while it lasts: the gdbstub
/// breakpoints and the tracker's state (every byte it patched, the return addresses it replaced).
/// If the monitor dies, `leakvisor detach DOMAIN` reads it to put everything back; a clean end
/// removes it. Written atomically after the attach, before new breakpoints reach the guest, after
/// each kernel hook and at most every second after other traps; the calls in flight newer than
/// that are in its journal of calls (`DOMAIN.calls`), written before each trampoline is.
struct AttachRecord: Codable {
    var uri: String
    var domain: String
    /// The QEMU process the record is about (a restarted domain has another: the record is stale).
    var qemuProcessID: Int32
    /// The gdbstub the attach started (it outlives the monitor: a recovery connects to it).
    var gdbPort: UInt16
    var vmlinux: String
    var breakpoints: [UInt64]
    var tracker: TrackerState

    /// $XDG_STATE_HOME/leakvisor/attached (else ~/.local/state/leakvisor/attached)/DOMAIN.json.
    static func path(domain: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let base = environment["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/state"
        let safe = String(domain.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
        return "\(base)/leakvisor/attached/\(safe).json"
    }

    static func load(domain: String) -> AttachRecord? {
        guard let data = FileManager.default.contents(atPath: path(domain: domain)) else { return nil }
        return try? JSONDecoder().decode(AttachRecord.self, from: data)
    }

    /// Writes the record atomically (a temporary file renamed over the old one), not flushed to
    /// the disk: it is there for a monitor that dies, not a host that does.
    func save() throws {
        let path = Self.path(domain: domain)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try ReportFile.write(try JSONEncoder().encode(self), to: path, durable: false)
    }

    /// The journal of calls in flight beside the record: `DOMAIN.calls` (`CallJournalFile`).
    static func callsPath(domain: String) -> String {
        String(path(domain: domain).dropLast(".json".count)) + ".calls"
    }

    static func remove(domain: String) {
        try? FileManager.default.removeItem(atPath: path(domain: domain))
        try? FileManager.default.removeItem(atPath: callsPath(domain: domain))
    }
}
