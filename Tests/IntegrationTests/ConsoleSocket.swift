import Foundation
import Synchronization

/// A listening Unix socket that a QEMU serial port connects to (`<serial type='unix'><source
/// mode='connect'>`): the guest's console output as it arrives, and a way to type into it.
final class ConsoleSocket: Sendable {
    let path: String
    private let listener: Int32
    /// The accepted connection's descriptor (-1 until QEMU connects).
    final class Connection: Sendable { let fd = Atomic<Int32>(-1) }
    private let connection = Connection()
    private let output = LockedBuffer()

    init(path: String) throws {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { close(fd); throw POSIXError(.ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard bound, listen(fd, 1) == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        chmod(path, 0o777)   // QEMU runs as libvirt's qemu user
        self.path = path
        listener = fd
        let (connection, output) = (self.connection, self.output)
        Thread.detachNewThread {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            connection.fd.store(client, ordering: .releasing)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                output.append(Data(buffer.prefix(n)))
            }
        }
    }

    var text: String { output.text }

    func waitFor(_ marker: String, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if text.contains(marker) { return true }
            usleep(100_000)
        }
        return text.contains(marker)
    }

    func type(_ text: String) {
        let fd = connection.fd.load(ordering: .acquiring)
        guard fd >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    deinit {
        close(listener)
        let fd = connection.fd.load(ordering: .acquiring)
        if fd >= 0 { close(fd) }
        unlink(path)
    }
}
