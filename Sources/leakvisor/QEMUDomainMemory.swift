import Foundation
import GuestMemory
import Libvirt
import QEMUBackend

/// What `attach DOMAIN` needs of a domain's QEMU before the gdbstub: its RAM (the QEMU process's
/// shared mapping through `/proc/PID/map_files`, or its private RAM mirrored), and the IDT base
/// its monitor reports.
enum QEMUDomainMemory {
    /// The domain's RAM: the QEMU process's shared mapping of exactly the domain's memory size
    /// (memfd or file backing), mapped here; else its one private mapping of that size, mirrored
    /// page by page (`QEMUPrivateRAM`). Placed as the domain's machine type places RAM.
    static func map(_ domain: LibvirtDomain, qemuProcessID pid: Int32) throws -> (memory: GuestMemory, mirror: QEMUPrivateRAM?) {
        let (bytes, _) = try domain.info()
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        let layout = QEMURAMLayout.extents(ramBytes: bytes, machine: machineType(try domain.xml()))
        guard let range = QEMURAMLayout.sharedRAMRange(in: maps, bytes: bytes) else {
            guard let start = QEMURAMLayout.privateRAMStart(in: maps, bytes: bytes) else { throw QEMUBackendError.noSharedRAM(pid: pid, bytes: bytes) }
            let mirror = try QEMUPrivateRAM(pid: pid, blockAddress: start, layout: layout)
            return (mirror.memory, mirror)
        }
        let path = "/proc/\(pid)/map_files/\(range)"
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw QEMUBackendError.open(path: path, errno: errno) }
        defer { close(fd) }
        do {
            return (try GuestMemory(sharedMappingOf: fd, at: 0, layout: layout), nil)
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
