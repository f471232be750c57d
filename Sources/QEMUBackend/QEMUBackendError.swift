import GDBRemote
import Glibc
import GuestMemory

/// Why the QEMU backend could not attach to, pause or drive a QEMU process.
public enum QEMUBackendError: Error, CustomStringConvertible {
    /// No shared mapping of the guest's RAM in the QEMU process: its RAM is private anonymous memory.
    case noSharedRAM(pid: Int32, bytes: UInt64)
    case ramMapping(path: String, GuestMemoryFileError)
    case open(path: String, errno: Int32)
    case gdb(GDBRemoteError)
    /// The guest did not stop within the pause's timeout.
    case pauseTimedOut(seconds: Double)
    /// The IDT could not be read or has no present gate for a vector the tracker needs.
    case noGate(vector: Int, why: String)
    /// The QEMU monitor's `info registers` did not name the IDT.
    case noIDT(String)
    /// The RAM found in the QEMU process does not hold what the gdbstub reads there.
    case ramMismatch(pageTableRoot: UInt64)

    public var description: String {
        switch self {
        case .noSharedRAM(let pid, let bytes):
            return "cannot find the guest's \(bytes >> 20) MiB of RAM in QEMU process \(pid): no shared mapping and no single private "
                + "mapping of that size (docs/attach.md)"
        case .ramMapping(let path, let error): return "cannot map the guest's RAM from \(path): \(error)"
        case .open(let path, let errno): return "cannot open \(path): \(String(cString: strerror(errno)))"
        case .gdb(let error): return "\(error)"
        case .pauseTimedOut(let seconds): return "the guest did not stop within \(seconds) s"
        case .noGate(let vector, let why): return "cannot find the guest's handler of exception \(vector): \(why)"
        case .noIDT(let output): return "the QEMU monitor did not report the IDT: \(output.prefix(200))"
        case .ramMismatch(let root):
            return "the RAM block found in the QEMU process is not the guest's (the page at 0x\(String(root, radix: 16)) differs from the gdbstub's)"
        }
    }
}
