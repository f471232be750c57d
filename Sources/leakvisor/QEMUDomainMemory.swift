import Foundation
import GuestMemory
import Libvirt
import QEMUBackend

/// What `attach --connect` needs of a domain's QEMU before the gdbstub: its RAM, mapped shared
/// from the QEMU process (`/proc/PID/map_files`), and the IDT base its monitor reports.
enum QEMUDomainMemory {
    /// Maps the domain's RAM: the QEMU process's shared mapping of exactly the domain's memory
    /// size, placed as the domain's machine type places RAM.
    static func map(_ domain: LibvirtDomain) throws -> GuestMemory {
        let pid = try domain.qemuProcessID()
        let (bytes, _) = try domain.info()
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        guard let range = QEMURAMLayout.sharedRAMRange(in: maps, bytes: bytes) else { throw QEMUBackendError.noSharedRAM(pid: pid, bytes: bytes) }
        let path = "/proc/\(pid)/map_files/\(range)"
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw QEMUBackendError.open(path: path, errno: errno) }
        defer { close(fd) }
        let layout = QEMURAMLayout.extents(ramBytes: bytes, machine: machineType(try domain.xml()))
        do {
            return try GuestMemory(sharedMappingOf: fd, at: 0, layout: layout)
        } catch {
            throw QEMUBackendError.ramMapping(path: path, error)
        }
    }

    /// `machine='…'` of the domain XML's `<type>` (empty when absent: the `pc` rules apply).
    static func machineType(_ xml: String) -> String {
        guard let type = xml.range(of: "<type "), let end = xml[type.upperBound...].range(of: ">") else { return "" }
        let element = xml[type.upperBound..<end.lowerBound]
        guard let attribute = element.range(of: "machine=") else { return "" }
        let value = element[attribute.upperBound...].dropFirst()
        return String(value.prefix { $0 != "'" && $0 != "\"" })
    }

    /// The IDT base from the QEMU monitor's `info registers` (`IDT=     fffffe0000000000 00000fff`).
    static func idtBase(_ domain: LibvirtDomain) throws -> UInt64 {
        let output = try domain.humanMonitorCommand("info registers")
        for line in output.split(whereSeparator: \.isNewline) where line.hasPrefix("IDT=") {
            let fields = line.dropFirst(4).split(separator: " ")
            if let base = fields.first, let value = UInt64(base, radix: 16) { return value }
        }
        throw QEMUBackendError.noIDT(output)
    }
}
