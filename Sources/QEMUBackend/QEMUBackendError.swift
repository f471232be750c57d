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

    public var description: String {
        switch self {
        case .noSharedRAM(let pid, let bytes):
            return "QEMU process \(pid) has no shared mapping of the guest's \(bytes >> 20) MiB of RAM: LeakVisor reads and patches "
                + "guest RAM through it. Give the domain shared memory: <memoryBacking><source type='memfd'/><access mode='shared'/>"
                + "</memoryBacking> (docs/attach.md)"
        case .ramMapping(let path, let error): return "cannot map the guest's RAM from \(path): \(error)"
        case .open(let path, let errno): return "cannot open \(path): \(String(cString: strerror(errno)))"
        case .gdb(let error): return "\(error)"
        case .pauseTimedOut(let seconds): return "the guest did not stop within \(seconds) s"
        case .noGate(let vector, let why): return "cannot find the guest's handler of exception \(vector): \(why)"
        case .noIDT(let output): return "the QEMU monitor did not report the IDT: \(output.prefix(200))"
        }
    }
}
