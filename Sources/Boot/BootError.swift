import GuestMemory

/// Why a kernel, initrd or boot configuration could not be loaded.
public enum BootError: Error, Equatable, Sendable, CustomStringConvertible {
    case unrecognizedKernel(String)
    case corruptKernel(String)
    case kernelDoesNotFit(needed: UInt64, available: UInt64)
    case initrdTooLarge(size: UInt64, available: UInt64)
    case commandLineTooLong(length: Int, maximum: Int)
    case commandLineInvalid(String)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case .unrecognizedKernel(let why): return "not a bootable x86-64 Linux kernel: \(why)"
        case .corruptKernel(let why): return "corrupt kernel image: \(why)"
        case .kernelDoesNotFit(let n, let a):
            return "kernel needs guest memory up to \(n >> 20) MiB but the guest has \(a >> 20) MiB; use a larger --memory"
        case .initrdTooLarge(let s, let a):
            return "initrd of \(s >> 10) KiB does not fit in the \(a >> 10) KiB of guest memory left above the kernel; use a larger --memory"
        case .commandLineTooLong(let n, let m): return "kernel command line is \(n) bytes, the kernel accepts at most \(m)"
        case .commandLineInvalid(let why): return "invalid kernel command line: \(why)"
        case .memory(let e): return "guest memory: \(e)"
        }
    }
}
